"""`scalelab plan`: what a budget of C FLOP buys, from a stored fit.

The best error E(C) comes from the compute law, P*(C) and N*(C) from the allocation
(Approach 1) and, where the data has IsoFLOP profiles, from Approach 2 as well; their intervals
are percentiles of the same quantities computed from every bootstrap resample of the fit. The
configuration to run is the zoo model whose parameter count is nearest P*(C) (in log space),
trained for the T the allocation was fitted at (P*(C) and N*(C) hold at that T only; or the T
the user asks for) on N = C / (3·FLOP(f)·T) examples, so that it spends the budget.
"""

from __future__ import annotations

import math

import numpy as np

from scalelab.analysis.bootstrap import CONFIDENCE, MIN_SUCCESS_SHARE
from scalelab.analysis.laws import saturating_power_law
from scalelab.errors import FitError


def _interval(values: np.ndarray | None, resamples: int) -> list[float] | None:
    if values is None:
        return None
    values = values[np.isfinite(values)]
    if not len(values) or len(values) < MIN_SUCCESS_SHARE * resamples:
        return None
    tail = 100 * (1 - CONFIDENCE) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _samples(fit: dict, name: str) -> np.ndarray | None:
    """The bootstrap draws kept with the fit, (resamples, fields); None without any."""
    rows = fit.get("bootstrap_samples", {}).get(name) or []
    return np.array(rows, dtype=float) if rows else None


def _power_laws_at(fit: dict, name: str, budget: float, resamples: int) -> dict | None:
    """P*(C) and N*(C) of Approach 1 ('allocation') or 2 at ``budget``, with the intervals of
    the bootstrap draws kept with the fit; None when the fit has no such part."""
    part = fit.get(name)
    if part is None:
        return None
    draws = _samples(fit, name)  # (k, 4): k_P, a, k_N, b
    return {
        "params": float(part["params_coefficient"] * budget ** part["params_exponent"]),
        "examples": float(part["examples_coefficient"] * budget ** part["examples_exponent"]),
        "params_ci": None
        if draws is None
        else _interval(draws[:, 0] * budget ** draws[:, 1], resamples),
        "examples_ci": None
        if draws is None
        else _interval(draws[:, 2] * budget ** draws[:, 3], resamples),
    }


def nearest_configuration(
    budget: float,
    params: float,
    epochs: float,
    zoo: list[str],
    num_classes: int,
    resolution: int,
) -> dict:
    """The zoo model nearest ``params`` (log space), trained for ``epochs`` on the N that
    spends ``budget``."""
    from scalelab.flops import model_cost  # torch is only needed here, not for fitting

    costs = {name: model_cost(name, num_classes, resolution) for name in zoo}
    name = min(costs, key=lambda m: abs(math.log(costs[m].params / params)))
    cost = costs[name]
    n = max(1, round(budget / (3 * cost.flops * epochs)))
    return {
        "model": name,
        "params": int(cost.params),
        "flops": int(cost.flops),
        "flop_convention": cost.convention,
        "examples": int(n),
        "epochs": float(epochs),
        "compute": 3.0 * cost.flops * n * epochs,
    }


def check_budget(budget: float) -> None:
    if not (isinstance(budget, int | float) and math.isfinite(budget) and budget > 0):
        raise FitError(f"the budget must be a positive number of FLOP, like 1e18; got {budget}")


def plan_budget(
    fit: dict,
    budget: float,
    zoo: list[str] | None = None,
    *,
    num_classes: int,
    resolution: int,
    epochs: float | None = None,
) -> dict:
    """Predicted best error at ``budget`` FLOP with its interval, P*(C), N*(C), and the nearest
    configuration of ``zoo`` (default: the paper's models) for a ``num_classes`` head at
    ``resolution``, trained for ``epochs`` (default: the T of the allocation). ``fit`` is a
    result of fit_scaling."""
    check_budget(budget)
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise FitError(f"--epochs must be a positive number of epochs; got {epochs}")
    if zoo is None:
        from scalelab.models import PAPER_ZOO

        zoo = PAPER_ZOO
    if not zoo:
        raise FitError("the zoo is empty; name at least one model, like B-12/Wi-1024")
    resamples = fit["bootstrap"]["resamples"]
    notes: list[str] = []
    law = fit["compute_law"]
    error = saturating_power_law(budget, law["a"], law["b"], law["alpha"], law["e_inf"])
    draws = _samples(fit, "compute_law")  # (k, 4): a, b, alpha, e_inf
    with np.errstate(over="ignore", invalid="ignore"):
        error_draws = None if draws is None else saturating_power_law(budget, *draws.T)
    plan = {
        "target": fit["target"],
        "budget": float(budget),
        "predicted_error": float(error),
        "predicted_error_ci": _interval(error_draws, resamples),
        "params": None,
        "params_ci": None,
        "examples": None,
        "examples_ci": None,
        "allocation_epochs": None,
        "approach2": None,
        "config": None,
        "notes": notes,
    }
    front = [p["compute"] for p in fit["frontier"]]
    lo, hi = min(front), max(front)
    if budget > hi or budget < lo:
        factor = budget / hi if budget > hi else lo / budget
        side = "above the largest" if budget > hi else "below the smallest"
        notes.append(
            f"the budget is {factor:.3g}x {side} compute on the frontier ({lo:.3g} to {hi:.3g} "
            "FLOP): the forecast extrapolates the laws"
        )
    plan["approach2"] = _power_laws_at(fit, "approach2", budget, resamples)
    alloc = fit["allocation"]
    if alloc is None:
        notes.append("no allocation in this fit (see its notes), so no P*(C), N*(C) or model")
        return plan
    params = alloc["params_coefficient"] * budget ** alloc["params_exponent"]
    examples = alloc["examples_coefficient"] * budget ** alloc["examples_exponent"]
    at_budget = _power_laws_at(fit, "allocation", budget, resamples)
    plan.update(
        params=float(params),
        examples=float(examples),
        params_ci=at_budget and at_budget["params_ci"],
        examples_ci=at_budget and at_budget["examples_ci"],
        allocation_epochs=alloc["epochs"],
    )
    t = alloc["epochs"] if epochs is None else float(epochs)
    if t != alloc["epochs"]:
        notes.append(
            f"P*(C) and N*(C) were fitted at T={alloc['epochs']:g}; this configuration trains "
            f"for T={t:g} as asked"
        )
    config = nearest_configuration(budget, params, t, zoo, num_classes, resolution)
    plan["config"] = config
    if abs(math.log(config["params"] / params)) > math.log(2):
        notes.append(
            f"the nearest model of the zoo, {config['model']} ({config['params']:.3g} "
            f"parameters), is more than 2x from P*(C) = {params:.3g}; consider a model of that size"
        )
    if abs(math.log(config["examples"] / examples)) > math.log(2):
        notes.append(
            f"N = {config['examples']:.3g} examples (what {config['model']} needs to spend the "
            f"budget in T={t:g} epochs) is more than 2x from N*(C) = {examples:.3g}"
        )
    return plan
