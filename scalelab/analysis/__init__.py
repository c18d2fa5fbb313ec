"""Scaling-law analysis: frontier, E(C) = a(b+C)^-alpha + E_inf, bottleneck laws E(P) and E(N),
compute-optimal allocation P*(C), N*(C) (Chinchilla Approaches 1, 2 and 3), bootstrap
intervals, backtests of every law on held-out runs, and the fit card.

Example:
    result = fit_scaling(scalelab.load_runs("runs.db"), "cifar10")
    print(render_fit(result))
    plan = plan_budget(result, 1e18, num_classes=11230, resolution=64)
"""

from scalelab.analysis.card import render_card
from scalelab.analysis.commands import fit_and_store, plan_from_db
from scalelab.analysis.frontier import frontier_indices
from scalelab.analysis.plan import plan_budget
from scalelab.analysis.report import fit_scaling
from scalelab.analysis.table import render_fit, render_plan

__all__ = [
    "fit_and_store",
    "fit_scaling",
    "frontier_indices",
    "plan_budget",
    "plan_from_db",
    "render_card",
    "render_fit",
    "render_plan",
]
