"""The fit card: how a stored fit was made, in a few lines for a paper's appendix.

A scaling-law exponent is only comparable with another made the same way: the FLOP
convention, the loss (log or linear residuals, Huber δ), the optimiser and its starts, the
points left out and why, how configurations and seeds were chosen and averaged, and the
bootstrap. `fit_card` records the parts that are fixed by this code when a fit is made; the
rest is read from the fit result itself, and what a fit did not record is printed as
"not recorded", never guessed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from scalelab.analysis.chinchilla import LBFGS_STARTS, start_grid
from scalelab.analysis.fitting import start_count
from scalelab.analysis.laws import HUBER_DELTA

NOT_RECORDED = "not recorded"
CONVENTIONS = {
    "mac": "1 multiply-accumulate = 1 FLOP (fvcore, the paper's); C = FLOP(f)·3·N·T",
    "params": "FLOP(f) taken as P (imported without a flops column); C = 3·P·N·T or as given",
}
DEFAULT_LOSS = "least squares on log E"  # what fitting.py minimises unless a fit says otherwise


def fit_card(rows: pd.DataFrame) -> dict[str, Any]:
    """What this code fixes about a fit made now of ``rows`` (the fitted points' rows of a
    ``scalelab.load_runs`` frame): FLOP convention, loss and optimisers."""
    grid = len(start_grid(0.0, 0.0))
    return {
        "flop_convention": sorted({str(c) for c in rows["flop_convention"].dropna()}),
        "loss": {
            "compute_law": DEFAULT_LOSS,
            "bottleneck_laws": DEFAULT_LOSS,
            "parametric": f"Huber on log E, δ = {HUBER_DELTA:g}, summed over points",
            "approach2": "least squares on E per IsoFLOP profile (parabola in ln P), on log P*",
        },
        "optimiser": {
            "compute_law": f"Levenberg-Marquardt (scipy curve_fit), {start_count(True)} starts",
            "bottleneck_laws": f"Levenberg-Marquardt (scipy curve_fit), {start_count(False)} "
            "starts",
            "parametric": f"L-BFGS-B from the best {LBFGS_STARTS} of {grid} grid starts "
            "(Besiroglu et al. 2024)",
            "allocation": "least squares on log P*, log N* against log C (closed form), P* "
            "located per budget by a parabola in ln P through the best size and its neighbours",
        },
    }


def _items(title: str, parts: dict[str, Any] | None) -> list[str]:
    """'- Title:' and one indented item per law, or 'not recorded'."""
    if not parts:
        return [f"- {title}: {NOT_RECORDED}"]
    return [f"- {title}:", *(f"  - {k.replace('_', ' ')}: {v}" for k, v in parts.items())]


def _loss(result: dict[str, Any], card: dict[str, Any]) -> dict[str, Any] | None:
    """A loss the fit stored itself (`fit --loss`) replaces the card's default for the
    laws of E(x); the parametric fit's Huber loss is not affected by it."""
    parts = dict(card.get("loss") or {})
    loss = result.get("loss")
    # `fit --loss` stores "log" (the card's default, DEFAULT_LOSS) or "linear", for Eq. 5
    # only: the bottleneck laws keep the log loss.
    if loss is not None and loss != "log":
        stored = ", ".join(f"{k} {v}" for k, v in loss.items()) if isinstance(loss, dict) else loss
        parts.update(compute_law=f"{stored} (as stored with the fit)")
        if isinstance(loss, dict):
            parts.update(bottleneck_laws=f"{stored} (as stored with the fit)")
    return parts or None


def _dropped(result: dict[str, Any]) -> list[str]:
    lines = []
    for reason, n in (result.get("excluded") or {}).items():
        if n:
            why = {"diverged": "diverged runs", "baseline": "C = 0 random-init baselines"}
            lines.append(f"{n} points: {why.get(reason, reason)}")
    if result.get("approach2"):
        lines += [f"Approach 2: {d}" for d in result["approach2"]["dropped"]]
    selection = result.get("selection")
    if isinstance(selection, dict) and selection.get("dropped"):
        lines.append(
            f"selection: {selection['dropped']} evaluations ({selection.get('dropped_runs', 0)} "
            "runs) of hyper-parameter settings not chosen"
        )
    return lines or ["none"]


def _seeds(seeds: dict[str, int] | None) -> str:
    """`seeds_per_point` ({"3": 24}: 24 points of 3 seeds) in words."""
    if not seeds:
        return NOT_RECORDED
    return ", ".join(f"{n} points of {k} seed{'' if k == '1' else 's'}" for k, n in seeds.items())


def render_card(result: dict[str, Any]) -> str:
    """The card of a fit result as a short Markdown block."""
    card = result.get("card") or {}
    conventions = card.get("flop_convention")
    selection = result.get("selection")
    rule = selection.get("rule") if isinstance(selection, dict) else None
    seeds = result.get("seeds_per_point")
    boot = result.get("bootstrap") or {}
    optimiser = card.get("optimiser")
    lines = [
        f"**Fit card: {result['target']}** ({result.get('method') or 'no method'}, "
        f"{result['n_points']} points from {result['n_runs']} runs"
        + (f", fit {result['fit_id']})" if "fit_id" in result else ")"),
        "",
        "- FLOP convention: "
        + ("; ".join(CONVENTIONS.get(c, c) for c in conventions) if conventions else NOT_RECORDED),
        *_items("Loss", _loss(result, card)),
        *_items("Optimiser and starts", optimiser),
        "- Points dropped:",
        *(f"  - {line}" for line in _dropped(result)),
        f"- Selection rule: {rule or NOT_RECORDED}",
        f"- Seeds averaged per point: {_seeds(seeds)}",
        "- Bootstrap: "
        + (
            f"{boot['resamples']} resamples of {boot.get('unit', 'run')}s, seed {boot['seed']}"
            if boot
            else NOT_RECORDED
        ),
    ]
    return "\n".join(lines)
