"""`scalelab backtest`: how far a law can be trusted, measured on runs the fit did not see.

The points above a compute cut are held out (``holdout_above`` C, or the ``holdout_top`` K
largest budgets, a budget being a group of points at equal compute as in Approach 2). Every law
is fitted on the rest exactly as `scalelab fit` does, bootstrap included, and then asked for
the held-out points:

- compute law: the error of the held-out points on the compute-optimal frontier;
- params / examples laws: held-out points at the law's fixed N (or P) and T;
- Approaches 1 and 2: P*(C) and N*(C) at the held-out budgets, against the held-out frontier
  (Approach 1) or the minima of held-out IsoFLOP profiles (Approach 2);
- Approach 3: the error of every held-out point at the fit's T.

Each is scored by the mean relative error |pred/obs - 1| and the RMS of log(pred/obs), with
95% intervals over the bootstrap fits, and by how many decades of compute it extrapolates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.analysis.approach2 import MIN_PROFILE_SIZES, fit_profile, profile_groups
from scalelab.analysis.bootstrap import CONFIDENCE, MIN_SUCCESS_SHARE
from scalelab.analysis.estimates import ESTIMATES, examples_law_points, params_law_points
from scalelab.analysis.frontier import frontier_indices
from scalelab.analysis.laws import saturating_power_law
from scalelab.analysis.points import PointArrays, select_points
from scalelab.analysis.report import analyse, choose_epochs, fit_result
from scalelab.errors import FitError, PlotError

Predict = Callable[[tuple[float, ...], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Check:
    """What one law is asked: its inputs on held-out points and the values observed there."""

    law: str  # a name of ESTIMATES
    quantity: str  # what is predicted: "error", "P*", "N*"
    inputs: np.ndarray  # (n, k): the law's arguments at each held-out point
    observed: np.ndarray  # (n,)
    compute: np.ndarray  # (n,) the compute of each, for the decades extrapolated
    predict: Predict  # (bootstrap sample of the law, inputs) -> predictions (n,)


def _compute_law(s: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    return saturating_power_law(x[:, 0], *s[:4])


def _bottleneck_law(s: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    return saturating_power_law(x[:, 0], s[0], 0.0, s[1], s[2])


def _params_at(s: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    return s[0] * x[:, 0] ** s[1]


def _examples_at(s: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    return s[2] * x[:, 0] ** s[3]


def _parametric(s: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    return s[0] + s[1] * x[:, 0] ** -s[3] + s[2] * x[:, 1] ** -s[4]


def heldout_mask(
    compute: np.ndarray, *, above: float | None = None, top: int | None = None
) -> np.ndarray:
    """True for the points held out: compute > ``above``, or in the ``top`` largest budgets."""
    if (above is None) == (top is None):
        raise FitError("give one hold-out rule: --holdout-above C or --holdout-top K")
    if above is not None:
        if not (math.isfinite(above) and above > 0):
            raise FitError(f"--holdout-above must be a positive compute in FLOP; got {above}")
        held = compute > above
    else:
        groups = profile_groups(compute)
        if top is None or top < 1 or top >= len(groups):
            raise FitError(
                f"--holdout-top must be between 1 and {len(groups) - 1} (the data has "
                f"{len(groups)} budgets, points at equal compute); got {top}"
            )
        held = np.zeros(len(compute), bool)
        held[np.concatenate(groups[-top:])] = True
    if held.all() or not held.any():
        raise FitError(
            f"the hold-out rule keeps {int((~held).sum())} points for fitting and holds out "
            f"{int(held.sum())}; choose a cut with points on both sides (compute spans "
            f"{compute.min():.3g} to {compute.max():.3g} FLOP)"
        )
    return held


def _best_at(data: PointArrays, mask: np.ndarray, axis: str) -> tuple[np.ndarray, ...]:
    """The lowest error at each value of ``axis`` among the ``mask`` points, and its compute."""
    idx = np.flatnonzero(mask)
    x = getattr(data, axis)[idx]
    order = np.lexsort((data.error[idx], x))  # by x, then by error: the first of each x wins
    first = np.unique(x[order], return_index=True)[1]
    best = idx[order][first]
    return getattr(data, axis)[best], data.error[best], data.compute[best]


def _heldout_minima(data: PointArrays, mask: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Budgets, P* and N* of the held-out IsoFLOP profiles whose minimum can be located."""
    idx = np.flatnonzero(mask)
    rows = []
    for group in profile_groups(data.compute[idx]) if len(idx) else []:
        g = idx[group]
        if len(np.unique(data.params[g])) < MIN_PROFILE_SIZES:
            continue
        p = fit_profile(data.compute[g], data.params[g], data.examples[g], data.error[g])
        if p.used:
            rows.append((p.budget, p.params, p.examples))
    return tuple(np.array(col) for col in zip(*rows, strict=True)) if rows else None


Skipped = tuple[str, str, str]  # (law, quantity, why it cannot be checked)


def heldout_checks(
    data: PointArrays, held: np.ndarray, fits: dict[str, Any], epochs: float
) -> list[Check | Skipped]:
    """What each law fitted on the points not ``held`` is asked about the held-out points."""
    checks: list[Check | Skipped] = []
    c = data.compute
    front = frontier_indices(c, data.error)
    front = front[held[front]]
    checks.append(
        Check("compute_law", "error", c[front, None], data.error[front], c[front], _compute_law)
        if len(front)
        else ("compute_law", "error", "no held-out point is on the compute-optimal frontier")
    )
    train = data.take(np.flatnonzero(~held))
    for name, select, axis, fixed_axes in (
        ("params_law", params_law_points, "params", ("examples", "epochs")),
        ("examples_law", examples_law_points, "examples", ("params", "epochs")),
    ):
        if fits.get(name) is None:
            continue  # its reason is in the fit's notes
        fixed = select(train).fixed
        mask = held.copy()
        for key in fixed_axes:
            mask &= getattr(data, key) == fixed[key]
        if mask.any():
            x, error, compute = _best_at(data, mask, axis)
            checks.append(Check(name, "error", x[:, None], error, compute, _bottleneck_law))
        else:
            where = ", ".join(f"{k}={fixed[k]:.4g}" for k in fixed_axes)
            checks.append((name, "error", f"no held-out point at {where}"))
    at_t = data.epochs == epochs
    front_t = np.flatnonzero(at_t)[frontier_indices(c[at_t], data.error[at_t])]
    front_t = front_t[held[front_t]]
    if len(front_t):
        checks += [
            Check(
                "allocation", "P*", c[front_t, None], data.params[front_t], c[front_t], _params_at
            ),
            Check(
                "allocation",
                "N*",
                c[front_t, None],
                data.examples[front_t],
                c[front_t],
                _examples_at,
            ),
        ]
    else:
        checks.append(("allocation", "P*", f"no held-out frontier point at T={epochs:g}"))
    minima = _heldout_minima(data, held & at_t)
    if minima is None:
        checks.append(("approach2", "P*", "no held-out IsoFLOP profile with a located minimum"))
    else:
        budgets, params, examples = minima
        checks += [
            Check("approach2", "P*", budgets[:, None], params, budgets, _params_at),
            Check("approach2", "N*", budgets[:, None], examples, budgets, _examples_at),
        ]
    idx = np.flatnonzero(held & at_t)
    inputs = np.column_stack([data.params[idx], data.examples[idx]])
    checks.append(
        Check("parametric", "error", inputs, data.error[idx], c[idx], _parametric)
        if len(idx)
        else ("parametric", "error", f"no held-out point at T={epochs:g}")
    )
    return checks


def _scores(predicted: np.ndarray, observed: np.ndarray) -> tuple[float, float]:
    """(mean |pred/obs - 1|, RMS of log(pred/obs)); NaN where a prediction is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = predicted / observed
        if not np.all(np.isfinite(ratio) & (ratio > 0)):
            return math.nan, math.nan
        return float(np.mean(np.abs(ratio - 1))), float(np.sqrt(np.mean(np.log(ratio) ** 2)))


def _interval(values: list[float], resamples: int) -> list[float] | None:
    finite = np.array([v for v in values if math.isfinite(v)])
    if resamples == 0 or len(finite) < max(1, MIN_SUCCESS_SHARE * resamples):
        return None
    tail = 100 * (1 - CONFIDENCE) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


def score(check: Check, full: Any, draws: list[tuple[float, ...]], resamples: int, top: float):
    """One row of the backtest table: scores of the full fit, their intervals over the
    bootstrap fits, and the decades of compute from the largest fitted point (``top``)."""
    predicted = check.predict(ESTIMATES[check.law].sample(full), check.inputs)
    rel, rms = _scores(predicted, check.observed)
    per_draw = [_scores(check.predict(d, check.inputs), check.observed) for d in draws]
    return {
        "law": check.law,
        "quantity": check.quantity,
        "n_heldout": len(check.observed),
        "relative_error": _number(rel),
        "relative_error_ci": _interval([r for r, _ in per_draw], resamples),
        "rms_log_error": _number(rms),
        "rms_log_error_ci": _interval([r for _, r in per_draw], resamples),
        "decades": float(np.log10(check.compute.max() / top)),
        "note": None,
        # Each held-out point scored: its compute, the value observed and the one predicted.
        "compute": [float(v) for v in check.compute],
        "observed": [float(v) for v in check.observed],
        "predicted": [_number(float(v)) for v in predicted],
    }


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def backtest(
    df: Any,
    target: str,
    *,
    holdout_above: float | None = None,
    holdout_top: int | None = None,
    epochs: float | None = None,
    method: str | None = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> dict:
    """Hold out the points above a compute cut, fit every law on the rest, score each law on
    the held-out points. ``df`` is a ``scalelab.load_runs`` frame. Returns a JSON-ready dict:
    target, holdout (rule, cut, counts, held-out checkpoint ids), epochs, laws (one row per
    law and quantity), fit (the fit on the kept points, as `scalelab fit` gives it), notes."""
    if bootstrap < 0:
        raise FitError(f"--bootstrap must be 0 or more resamples, got {bootstrap}")
    points = select_points(df, target, method)
    data = PointArrays.from_points(points)
    held = heldout_mask(data.compute, above=holdout_above, top=holdout_top)
    kept = np.flatnonzero(~held)
    train_points = points.take(kept)
    train = PointArrays.from_points(train_points)
    t = choose_epochs(train.epochs, epochs)
    try:
        analysis = analyse(train, t, resamples=bootstrap, seed=seed)
    except FitError as exc:
        raise FitError(f"on the {len(kept)} points kept for fitting: {exc}") from None
    top = float(train.compute.max())
    laws = []
    for check in heldout_checks(data, held, analysis.fits, t):
        if isinstance(check, Check):
            full = analysis.fits.get(check.law)
            if full is None:
                continue  # could not be fitted: the fit's notes say why
            laws.append(score(check, full, analysis.draws.samples[check.law], bootstrap, top))
        else:
            law, quantity, why = check
            if analysis.fits.get(law) is not None:
                laws.append({"law": law, "quantity": quantity, "n_heldout": 0, "note": why})
    fit = fit_result(train_points, analysis)
    rule = "above" if holdout_above is not None else "top"
    return {
        "target": target,
        "holdout": {
            "rule": rule,
            "value": holdout_above if rule == "above" else holdout_top,
            "max_fitted_compute": top,
            "n_fitted": len(kept),
            "n_heldout": int(held.sum()),
            "checkpoint_ids": points.checkpoint_ids(np.flatnonzero(held)),
        },
        "epochs": t,
        "laws": laws,
        "fit": fit,
        "notes": list(fit["notes"]),
    }


def _check_figure_path(figure: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    if figure.suffix.lstrip(".") not in formats:
        raise PlotError(
            f"--figure {figure}: name a file with one of the formats "
            f"{', '.join(sorted(formats))}, like backtest.png"
        )
    if not figure.parent.is_dir():
        raise PlotError(
            f"cannot write {figure}: there is no directory {figure.parent}; create it or give "
            "another --figure path"
        )


def backtest_from_db(
    db: str | None,
    target: str,
    *,
    figure: Path | None = None,
    **options: Any,
) -> dict:
    """backtest() on the runs of ``db``; with ``figure``, also draw the backtest there (its
    format from the suffix). The figure's folder is checked before any fitting."""
    from scalelab import load_runs

    if figure is not None:
        _check_figure_path(figure)
    runs = load_runs(db)
    result = backtest(runs, target, **options)
    if figure is not None:
        import matplotlib.pyplot as plt

        from scalelab.figures.backtest import backtest_figure
        from scalelab.figures.save import save_figure

        fig = backtest_figure(runs, result)
        try:
            (path,) = save_figure(fig, figure.parent, figure.stem, [figure.suffix.lstrip(".")])
        finally:
            plt.close(fig)
        result["figure"] = str(path)
    return result
