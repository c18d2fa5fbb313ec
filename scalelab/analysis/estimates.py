"""Every estimate `scalelab fit` reports, as a function of the points.

The same functions serve the full-data fit and each bootstrap resample (which redoes the
frontier and the selection of points, then the fit warm-started from the full-data optimum),
so an interval always describes exactly the procedure that produced the estimate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scalelab.analysis.approach2 import Approach2, fit_approach2
from scalelab.analysis.chinchilla import Allocation, ParametricFit, fit_allocation, fit_parametric
from scalelab.analysis.fitting import PowerLawFit, fit_power_law, min_points
from scalelab.analysis.frontier import frontier_indices
from scalelab.analysis.points import PointArrays
from scalelab.errors import FitError

COMPUTE_LAW_POINTS = min_points(4)  # a, b, alpha, E_inf
BOTTLENECK_LAW_POINTS = min_points(3)  # a, alpha, E_inf


def too_few_frontier_points(compute: np.ndarray) -> str:
    """Say how many more frontier points the compute law needs, and in which compute range."""
    n = len(compute)
    lo, hi = float(compute.min()), float(compute.max())
    where = f"the frontier spans {lo:.3g} to {hi:.3g} FLOP"
    if n >= 2:
        gaps = np.diff(np.log(compute))
        i = int(np.argmax(gaps))
        where += f" and its widest gap is {compute[i]:.3g} to {compute[i + 1]:.3g} FLOP"
    return (
        f"too few frontier points for the 4-parameter compute law: {n} found, "
        f"{COMPUTE_LAW_POINTS} needed; add runs that put {COMPUTE_LAW_POINTS - n} more points on "
        f"the frontier, e.g. with compute above {hi:.3g} FLOP or below {lo:.3g} FLOP ({where})"
    )


def compute_law(
    data: PointArrays,
    epochs: float,
    warm: PowerLawFit | None,
    analytic: bool,
    loss: str = "log",
) -> PowerLawFit:
    """Eq. 5, E(C) = a (b + C)^-alpha + E_inf, on the compute-optimal frontier, fitted with
    ``loss`` ("log" or the paper's "linear" least squares, see fitting.py)."""
    front = frontier_indices(data.compute, data.error)
    compute = data.compute[front]
    if len(front) < COMPUTE_LAW_POINTS:
        raise FitError(too_few_frontier_points(compute))
    return fit_power_law(
        compute,
        data.error[front],
        shift=True,
        what="compute law",
        x_ref=warm.x_ref if warm else None,
        start=warm.scaled if warm else None,
        analytic_gradient=analytic,
        loss=loss,
    )


def _best_per_value(x: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lowest error at each distinct x. Points are already seed means of one selected
    setting per (model, N, T), so this only chooses between models of equal size."""
    values, inverse = np.unique(x, return_inverse=True)
    best = np.full(len(values), np.inf)
    np.minimum.at(best, inverse, error)
    return values, best


@dataclass(frozen=True)
class BottleneckPoints:
    """The points of a bottleneck law: x (P or N) against the error, at fixed other axes."""

    x: np.ndarray
    error: np.ndarray
    fixed: dict[str, float]


def _largest_fittable(fixed: np.ndarray, varied: np.ndarray) -> float:
    """The largest value of the ``fixed`` axis trained at enough ``varied`` values for a
    bottleneck law (else the largest, and the law says how many it lacks). On a product grid
    that is the largest; where only the smaller models were trained on the largest N, E(P)
    is read at the largest N that enough model sizes reached."""
    values = np.unique(fixed)
    counts = np.array([len(np.unique(varied[fixed == v])) for v in values])
    enough = values[counts >= BOTTLENECK_LAW_POINTS]
    return float(enough.max() if len(enough) else values.max())


def _bottleneck_points(data: PointArrays, axis: str, other: str) -> BottleneckPoints:
    """Each ``axis`` value's error at the largest fittable ``other`` value (see above) and,
    among those runs, the largest T."""
    fixed = _largest_fittable(getattr(data, other), getattr(data, axis))
    at = getattr(data, other) == fixed
    t = data.epochs[at].max()
    mask = at & (data.epochs == t)
    x, error = _best_per_value(getattr(data, axis)[mask], data.error[mask])
    return BottleneckPoints(x, error, {other: fixed, "epochs": float(t)})


def params_law_points(data: PointArrays) -> BottleneckPoints:
    """Each model size's error at the largest N (that enough model sizes reached)."""
    return _bottleneck_points(data, "params", "examples")


def examples_law_points(data: PointArrays) -> BottleneckPoints:
    """Each N's error with the largest model (that was trained at enough N)."""
    return _bottleneck_points(data, "examples", "params")


def _bottleneck_law(
    points: BottleneckPoints, name: str, axis: str, warm: PowerLawFit | None, analytic: bool
) -> PowerLawFit:
    if len(points.x) < BOTTLENECK_LAW_POINTS:
        fixed = ", ".join(f"{k}={v:.4g}" for k, v in points.fixed.items())
        raise FitError(
            f"the {name} needs at least {BOTTLENECK_LAW_POINTS} {axis} at {fixed}; found "
            f"{len(points.x)}: add runs with other {axis} there"
        )
    return fit_power_law(
        points.x,
        points.error,
        shift=False,
        what=name,
        x_ref=warm.x_ref if warm else None,
        start=warm.scaled if warm else None,
        analytic_gradient=analytic,
    )


def params_law(
    data: PointArrays, epochs: float, warm: PowerLawFit | None, analytic: bool
) -> PowerLawFit:
    """E(P) = a P^-alpha + E_inf (paper Fig. 7, left; alpha_P ≈ 1)."""
    return _bottleneck_law(params_law_points(data), "params law", "model sizes", warm, analytic)


def examples_law(
    data: PointArrays, epochs: float, warm: PowerLawFit | None, analytic: bool
) -> PowerLawFit:
    """E(N) = a N^-alpha + E_inf (paper Fig. 7, right; alpha_N ≈ 0.35)."""
    return _bottleneck_law(
        examples_law_points(data), "examples law", "dataset sizes", warm, analytic
    )


def allocation(data: PointArrays, epochs: float, warm: Allocation | None, analytic: bool):
    """Approach 1 at T = epochs (a linear fit in logs: nothing to warm-start)."""
    at = data.at_epochs(epochs)
    return fit_allocation(epochs, at.compute, at.params, at.examples, at.error)


def approach2(data: PointArrays, epochs: float, warm: Approach2 | None, analytic: bool):
    """Approach 2 at T = epochs: IsoFLOP parabolas, then power laws of their minima."""
    at = data.at_epochs(epochs)
    return fit_approach2(epochs, at.compute, at.params, at.examples, at.error)


def parametric(
    data: PointArrays, epochs: float, warm: ParametricFit | None, analytic: bool
) -> ParametricFit:
    """Approach 3 over all points at T = epochs."""
    at = data.at_epochs(epochs)
    return fit_parametric(at.params, at.examples, at.error, start=warm, analytic_gradient=analytic)


@dataclass(frozen=True)
class Estimate:
    """One reported estimate: how to fit it, and which numbers of a fit the bootstrap keeps."""

    name: str
    fit: Callable[[PointArrays, float, Any, bool], Any]
    sample_fields: tuple[str, ...]

    def sample(self, fit: Any) -> tuple[float, ...]:
        return tuple(float(getattr(fit, f)) for f in self.sample_fields)


# What the bootstrap keeps of Approaches 1 and 2: enough to evaluate P*(C) and N*(C) anywhere.
ALLOCATION_FIELDS = (
    "params_coefficient",
    "params_exponent",
    "examples_coefficient",
    "examples_exponent",
)

ESTIMATES: dict[str, Estimate] = {
    e.name: e
    for e in (
        Estimate("compute_law", compute_law, ("a", "b", "alpha", "e_inf")),
        Estimate("params_law", params_law, ("a", "alpha", "e_inf")),
        Estimate("examples_law", examples_law, ("a", "alpha", "e_inf")),
        Estimate("allocation", allocation, ALLOCATION_FIELDS),
        Estimate("approach2", approach2, ALLOCATION_FIELDS),
        Estimate(
            "parametric",
            parametric,
            ("E", "A", "B", "alpha", "beta", "params_exponent", "examples_exponent"),
        ),
    )
}


def estimates_with_loss(loss: str) -> dict[str, Estimate]:
    """ESTIMATES with Eq. 5 fitted under ``loss``; the P and N laws keep the log loss."""
    compute = ESTIMATES["compute_law"]
    with_loss = replace(compute, fit=functools.partial(compute_law, loss=loss))
    return {**ESTIMATES, "compute_law": with_loss}
