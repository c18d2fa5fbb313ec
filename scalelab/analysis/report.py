"""`scalelab fit`: every estimate with its interval, as a JSON-ready dict and as a table.

A part that cannot be computed from the data is null with the reason in ``notes``; only the
compute law, the reason to run a fit at all, raises FitError when it cannot be computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scalelab.analysis.approach2 import Approach2
from scalelab.analysis.blas import one_blas_thread
from scalelab.analysis.bootstrap import MIN_SUCCESS_SHARE, BootstrapDraws, bootstrap
from scalelab.analysis.card import fit_card
from scalelab.analysis.estimates import (
    ESTIMATES,
    compute_law,
    estimates_with_loss,
    examples_law_points,
    params_law_points,
)
from scalelab.analysis.fitting import LOSSES, holdout_log_rmse
from scalelab.analysis.frontier import frontier_indices
from scalelab.analysis.points import PointArrays, Points, select_points
from scalelab.analysis.tuning import size_inversion_notes
from scalelab.errors import FitError

# Part of a stored fit's fingerprint: a fit stored before the result changed is made again
# rather than reused. 2: Approach 2 and the card; 3: resamples drawn from the points in one
# canonical order (an older fit's intervals depended on the database's row order) and the
# note on an Approach 1 interval without width; 4: the notes on a larger model that trained
# worse and on an unbounded irreducible error in E(P, N); 5: Approach 1 reads P*(C) off
# interpolated per-size curves instead of fitting the frontier's runs; 6: settings are chosen
# on the probe's validation error before the upstream error; 7: Approach 1 reports the
# exponents of the halves of its range, and a note where they differ.
RESULT_VERSION = 7
# The Monte Carlo error of a 95% percentile interval is large below a few hundred resamples.
FEW_RESAMPLES = 200


@dataclass(frozen=True)
class Analysis:
    """The fits of one target on the full data, and their bootstrap draws."""

    data: PointArrays
    epochs: float
    fits: dict[str, Any]  # name -> fit object, or None when it could not be computed
    holdout_log_rmse: float | None  # of the compute law, when there are enough points
    notes: list[str]
    draws: BootstrapDraws
    loss: str = "log"  # of the compute law (Eq. 5)


def choose_epochs(epochs_in_data: np.ndarray, epochs: float | None) -> float:
    """T for the allocation and the parametric fit: the one asked for, else the smallest T
    (the paper fixes T = 50, its smallest)."""
    available = np.unique(epochs_in_data)
    if epochs is None:
        return float(available[0])
    match = available[np.isclose(available, epochs, rtol=1e-9, atol=0)]
    if not len(match):
        shown = ", ".join(f"{t:g}" for t in available[:10])
        raise FitError(f"no points at T={epochs:g} epochs; epochs in the data: {shown}")
    return float(match[0])


def analyse(
    data: PointArrays,
    epochs: float,
    *,
    parts: Iterable[str] = tuple(ESTIMATES),
    resamples: int = 1000,
    seed: int = 0,
    warm_start: bool = True,
    analytic_gradients: bool = True,
    loss: str = "log",
) -> Analysis:
    """Fit ``parts`` (names of ESTIMATES) on the full data, then bootstrap them; the compute
    law with ``loss``."""
    estimates = estimates_with_loss(loss)
    fits: dict[str, Any] = {}
    notes: list[str] = []
    with one_blas_thread:
        for name in parts:
            try:
                fits[name] = estimates[name].fit(data, epochs, None, analytic_gradients)
            except FitError as exc:
                if name == "compute_law":
                    raise
                fits[name] = None
                notes.append(f"{name}: {exc}")
        holdout = None
        if "compute_law" in fits:
            front = frontier_indices(data.compute, data.error)
            try:
                holdout = holdout_log_rmse(
                    data.compute[front],
                    data.error[front],
                    shift=True,
                    what="compute law",
                    loss=loss,
                )
            except FitError as exc:
                notes.append(f"compute_law: {exc}")
        draws = bootstrap(
            data,
            epochs,
            estimates,
            fits,
            resamples=resamples,
            seed=seed,
            warm_start=warm_start,
            analytic_gradients=analytic_gradients,
        )
    return Analysis(data, epochs, fits, holdout, notes, draws, loss)


def fit_scaling(
    df: pd.DataFrame,
    target: str,
    *,
    epochs: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    method: str | None = None,
    loss: str = "log",
) -> dict:
    """Fit the scaling laws of one target in a ``scalelab.load_runs`` frame.

    ``epochs`` is the T of the allocation and the parametric fit (default: the smallest T in
    the data); ``method`` picks the probe method when the target has points from several;
    ``bootstrap`` resamples of runs, seeded by ``seed``, give the 95% intervals; ``loss`` is
    Eq. 5's: "log" (residuals in log E) or "linear" (least squares on E, the paper's).

    Returns a JSON-serialisable dict: target, loss, n_points, frontier, compute_law (with
    alpha_other_loss, α refitted under the other loss), params_law, examples_law, allocation,
    approach2, parametric (each null when it cannot be computed, with the reason in notes),
    excluded, checkpoint_ids, bootstrap, bootstrap_samples and card (how the fit was made,
    see card.py).
    Raises FitError for no points, NaN or non-positive values, too few frontier points for
    the compute law, or a compute law that does not converge.
    """
    if bootstrap < 0:
        raise FitError(f"--bootstrap must be 0 or more resamples, got {bootstrap}")
    if loss not in LOSSES:
        raise FitError(f"unknown --loss {loss!r}; use one of {', '.join(LOSSES)}")
    points = select_points(df, target, method)
    data = PointArrays.from_points(points)
    t = choose_epochs(data.epochs, epochs)
    analysis = analyse(data, t, resamples=bootstrap, seed=seed, loss=loss)
    result = fit_result(points, analysis)
    fitted = df[(df["target"] == target) & df["checkpoint_id"].isin(result["checkpoint_ids"])]
    result["card"] = fit_card(fitted)
    return result


def _other_loss(analysis: Analysis, interval: list[float] | None) -> dict | None:
    """α of Eq. 5 refitted under the other loss, and whether it differs from the reported α
    by more than half the width of its interval (always, without an interval); None if that
    fit does not converge."""
    other = next(name for name in LOSSES if name != analysis.loss)
    try:
        alpha = compute_law(analysis.data, analysis.epochs, None, True, loss=other).alpha
    except FitError:
        return None
    gap = abs(alpha - analysis.fits["compute_law"].alpha)
    differs = interval is None or gap > (interval[1] - interval[0]) / 2
    return {"loss": other, "alpha": alpha, "differs": differs}


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return float(value) if value is not None and math.isfinite(value) else None


def _frontier(points: Points, data: PointArrays) -> list[dict]:
    rows = points.averaged.iloc[frontier_indices(data.compute, data.error)]
    return [
        {
            "compute": float(r.compute),
            "error": float(r.error),
            "params": int(r.params),
            "examples": int(r.examples),
            "epochs": float(r.epochs),
            "model": str(r.model),
            "seeds": int(r.seeds),
            "checkpoint_id": int(min(r.checkpoint_ids)),
            "checkpoint_ids": sorted(int(i) for i in r.checkpoint_ids),
        }
        for r in rows.itertuples()
    ]


def seeds_per_point(points: Points) -> dict[str, int]:
    """How many fitted points stand on k seeds, for each k: {"3": 24} = 24 points of 3 seeds."""
    counts = points.averaged["seeds"].value_counts().sort_index()
    return {str(int(k)): int(n) for k, n in counts.items()}


def fit_result(points: Points, analysis: Analysis) -> dict:
    """The JSON-ready result of `scalelab fit` from the points and their analysis."""
    fits, draws, data = analysis.fits, analysis.draws, analysis.data
    notes = list(analysis.notes)

    def ci(name: str, field: str) -> list[float] | None:
        if fits.get(name) is None or draws.resamples == 0:
            return None
        return draws.interval(name, ESTIMATES[name].sample_fields.index(field))

    law = fits["compute_law"]
    result_frontier = _frontier(points, data)
    result: dict[str, Any] = {
        "target": points.target,
        "method": points.method,
        "loss": analysis.loss,
        "n_points": len(data.error),
        "n_runs": int(points.frame["run"].nunique()),
        "sweeps": points.sweeps,
        "seeds_per_point": seeds_per_point(points),
        "selection": points.selection,
        "excluded": points.excluded,
        "checkpoint_ids": [int(i) for i in points.frame["checkpoint_id"]],
        "frontier": result_frontier,
        "compute_law": {
            "a": _number(law.a),
            "b": _number(law.b),
            "alpha": law.alpha,
            "e_inf": law.e_inf,
            "alpha_ci": ci("compute_law", "alpha"),
            "e_inf_ci": ci("compute_law", "e_inf"),
            "r2": _number(law.r2),
            "holdout_log_rmse": _number(analysis.holdout_log_rmse),
            "n_points": len(result_frontier),
            "alpha_other_loss": _other_loss(analysis, ci("compute_law", "alpha")),
        },
    }
    for name, select in (("params_law", params_law_points), ("examples_law", examples_law_points)):
        fit = fits.get(name)
        result[name] = (
            None
            if fit is None
            else {
                "a": _number(fit.a),
                "alpha": fit.alpha,
                "e_inf": fit.e_inf,
                "alpha_ci": ci(name, "alpha"),
                "r2": _number(fit.r2),
                "n_points": len(select(data).x),
                **select(data).fixed,
            }
        )
    alloc = fits.get("allocation")
    halves = alloc and alloc.half_exponents
    result["allocation"] = (
        None
        if alloc is None
        else {
            "epochs": alloc.epochs,
            "params_exponent": alloc.params_exponent,
            "params_exponent_ci": ci("allocation", "params_exponent"),
            "examples_exponent": alloc.examples_exponent,
            "examples_exponent_ci": ci("allocation", "examples_exponent"),
            "params_coefficient": _number(alloc.params_coefficient),
            "examples_coefficient": _number(alloc.examples_coefficient),
            "n_budgets": alloc.n_budgets,
            "compute_range": list(alloc.compute_range),
            "minima": [list(m) for m in alloc.minima],
            "grid_edge": list(alloc.warnings),
            "params_exponent_halves": halves and list(halves),
        }
    )
    if alloc is not None:
        notes.extend(alloc.warnings)
        notes.extend(alloc.bend_warnings())
    result["approach2"] = approach2_part(fits.get("approach2"), ci)
    if fits.get("approach2") is not None:
        notes.extend(fits["approach2"].warnings)
    par = fits.get("parametric")
    result["parametric"] = (
        None
        if par is None
        else {
            "E": par.E,
            "A": _number(par.A),
            "B": _number(par.B),
            "alpha": par.alpha,
            "beta": par.beta,
            "params_exponent": par.params_exponent,
            "examples_exponent": par.examples_exponent,
            "alpha_ci": ci("parametric", "alpha"),
            "beta_ci": ci("parametric", "beta"),
            "params_exponent_ci": ci("parametric", "params_exponent"),
            "examples_exponent_ci": ci("parametric", "examples_exponent"),
            "epochs": analysis.epochs,
            "n_points": len(data.at_epochs(analysis.epochs).error),
            "huber_loss": par.loss,
        }
    )
    if par is not None:
        notes.extend(par.warnings)
    result["bootstrap"] = {
        "resamples": draws.resamples,
        "seed": draws.seed,
        "unit": draws.unit,
        "succeeded": {name: draws.succeeded(name) for name in draws.samples},
    }
    # Kept so that `scalelab plan` can put an interval on a prediction at any budget.
    result["bootstrap_samples"] = {
        name: [[_number(v) for v in s] for s in draws.samples.get(name, [])]
        for name in ("compute_law", "allocation", "approach2")
    }
    notes.extend(_selection_notes(points))
    notes.extend(size_inversion_notes(points.candidates))
    notes.extend(_bootstrap_notes(draws))
    result["notes"] = notes
    return result


def approach2_part(
    fit: Approach2 | None, ci: Callable[[str, str], list[float] | None]
) -> dict | None:
    """The JSON of Approach 2: both power laws with intervals and every profile's minimum."""
    if fit is None:
        return None
    return {
        "epochs": fit.epochs,
        "params_exponent": fit.params_exponent,
        "params_exponent_ci": ci("approach2", "params_exponent"),
        "examples_exponent": fit.examples_exponent,
        "examples_exponent_ci": ci("approach2", "examples_exponent"),
        "params_coefficient": _number(fit.params_coefficient),
        "examples_coefficient": _number(fit.examples_coefficient),
        "n_profiles": fit.n_profiles,
        "profiles": [p.as_dict() for p in fit.profiles],
        "dropped": list(fit.dropped),
    }


def _selection_notes(points: Points) -> list[str]:
    """Where the selection rule could not avoid the fitted error (the rule itself and its
    counts are in ``selection``)."""
    sel = points.selection
    if sel["by_target_error"]:
        return [
            f"selection: {sel['by_target_error']} (model, N, T) have no upstream error "
            "(imported): their setting was chosen on the target error itself, which biases "
            "it downwards"
        ]
    if sel["contested"] and points.target == "upstream":
        return ["selection: the target is the upstream error, so settings were chosen on it"]
    return []


def _bootstrap_notes(draws: BootstrapDraws) -> list[str]:
    if draws.resamples == 0:
        return ["bootstrap: 0 resamples asked for, so no intervals"]
    notes = []
    if draws.resamples < FEW_RESAMPLES:
        notes.append(
            f"bootstrap: only {draws.resamples} resamples; intervals are rough "
            f"(use --bootstrap {FEW_RESAMPLES * 5} or more)"
        )
    for name in draws.samples:
        ok = draws.succeeded(name)
        if ok < draws.resamples:
            verdict = (
                "its interval uses the others"
                if ok >= MIN_SUCCESS_SHARE * draws.resamples
                else "too few to give an interval"
            )
            notes.append(
                f"{name}: {draws.resamples - ok} of {draws.resamples} resamples could not be "
                f"fitted (too few points or no convergence); {verdict}"
            )
    return notes
