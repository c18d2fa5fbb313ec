"""How to split compute between parameters P and examples N (Hoffmann et al. 2022).

- Approach 1 (paper Fig. 8): at a fixed T, P*(C) and N*(C), each a power law. As in Hoffmann
  et al., each model size's error is interpolated over compute (here between its runs at
  different N, linear in log-log) and the best size is read off at log-spaced budgets; since a
  CPU grid has a handful of sizes, not Chinchilla's dozens, the minimum over P is located by
  the parabola in ln P through the best size and its two neighbours, and a budget counts only
  where the best size has a smaller and a larger one beside it (else P* lies beyond the grid).
  Fitting the frontier's runs instead pins P*(C) to the grid's corners: on noise-free
  E + A/P^a + B/N^b product grids of doubling P and N it came out 0.09 and 0.13 above the
  closed form β/(α+β) (the two grids of tests/test_allocation_grid_edge.py; 0.10 on average
  over 150 random ones, measured by hand), 0.30 against 0.17 / 0.21 from E(P, N) on the demo.
- Approach 3: E(P, N) = E + A/P^alpha + B/N^beta over all points at that T, fitted as
  Besiroglu et al. 2024 re-fitted Chinchilla: Huber loss (delta = 1e-3) on log E, summed over
  points, L-BFGS-B from a grid of starts with tolerances tight enough not to stop early.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from scalelab.analysis.fitting import fit_log_linear
from scalelab.analysis.laws import (
    implied_allocation_exponents,
    parametric_objective,
    parametric_objective_batch,
)
from scalelab.errors import FitError

# Besiroglu et al.'s grid of starts, in raw (uncentred) log units: 6·6·5·5·5 = 4,500 points.
GRID_A = GRID_B = np.arange(0.0, 30.0, 5.0)
GRID_E = np.arange(-1.0, 1.5, 0.5)
GRID_ALPHA = GRID_BETA = np.arange(0.0, 2.5, 0.5)
# L-BFGS-B runs from the grid points with the lowest objective: every one of the 4,500 would
# cost minutes, and on Chinchilla's data the best 10 already all reach the global optimum.
LBFGS_STARTS = 24
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000, "maxfun": 20_000, "maxls": 50}
# A run that ends in a line-search failure is at the optimum when its gradient is this small.
GRADIENT_TOLERANCE = 1e-10
EXPONENT_BOUNDS = (0.0, 10.0)
PARAMETRIC_PARAMS = 5
# Below this share of the lowest fitted error, E has run off towards 0: the points do not
# bound it (on one demo grid E fell to 4e-12 while Eq. 5 put E_inf at 0.22).
UNBOUNDED_E_SHARE = 1e-3
# Approach 1 reads P*(C) at this many log-spaced budgets across the points' compute (Hoffmann
# et al. used 1,500; the interpolated curves are piecewise linear, so 200 resolve every kink).
ALLOCATION_BUDGETS = 200
# ... and needs located minima at this many budgets, over at least this many decades.
MIN_LOCATED_BUDGETS = 3
MIN_LOCATED_DECADES = 0.25
# Approach 1 warns when P*(C) is located over less than this share of the log-compute range
# where three or more sizes have runs: elsewhere the best size sat at the grid's edge.
LOCATED_SHARE_WARNING = 0.5
# ... and when P*(C)'s exponent over the lower half of the located log-compute range and over
# the upper half differ by more than this. Noise-free E + A/P^a + B/N^b grids give halves
# within 0.015 of each other (tests/test_allocation_grid_edge.py); the demo's four sizes gave
# -0.03 and 0.40 on synthetic-cifar100, Chinchilla's 245 runs 0.71 and 0.35.
BEND_WARNING = 0.1
MIN_HALF_BUDGETS = 3  # located budgets per half for its exponent


@dataclass(frozen=True)
class Allocation:
    """P*(C) = params_coefficient · C^params_exponent, likewise N*(C), at ``epochs``, fitted
    to the ``minima`` located at the budgets where the grid brackets P*."""

    epochs: float
    params_coefficient: float
    params_exponent: float
    examples_coefficient: float
    examples_exponent: float
    minima: tuple[tuple[float, float, float], ...]  # (C, P*, N*) per located budget, C rising
    warnings: tuple[str, ...] = ()  # where the best size sat at the grid's edge

    @property
    def n_budgets(self) -> int:
        return len(self.minima)

    @property
    def compute_range(self) -> tuple[float, float]:
        return self.minima[0][0], self.minima[-1][0]

    @functools.cached_property  # read by the report and by bend_warnings
    def half_exponents(self) -> tuple[float, float] | None:
        """P*(C)'s exponent over the lower and over the upper half of the log-compute range of
        the minima (least squares on each half's); None with fewer than MIN_HALF_BUDGETS."""
        compute, params = (np.array([m[i] for m in self.minima]) for i in (0, 1))
        middle = np.sqrt(compute[0] * compute[-1])
        halves = (compute <= middle, compute >= middle)
        if min(int(h.sum()) for h in halves) < MIN_HALF_BUDGETS:
            return None
        lower, upper = (fit_log_linear(compute[h], params[h])[1] for h in halves)
        return lower, upper

    def bend_warnings(self) -> tuple[str, ...]:
        """Where the halves' exponents differ by more than BEND_WARNING, P*(C) is no single
        power law over the compute where it was located, and the bootstrap interval (which
        describes the noise of the points) does not show that: say so."""
        halves = self.half_exponents
        if halves is None or abs(halves[1] - halves[0]) <= BEND_WARNING:
            return ()
        low, high = self.compute_range
        return (
            f"allocation: at T={self.epochs:g}, P*(C) bends where it is located: C^{halves[0]:.2f} "
            f"from {low:.2g} to {np.sqrt(low * high):.2g} FLOP, C^{halves[1]:.2f} from there to "
            f"{high:.2g}; the exponent {self.params_exponent:.2f} averages the two, and its "
            "interval does not include the bend: the power law describes this range on average "
            "only (more model sizes between the grid's locate P* more finely)",
        )

    def params_at(self, compute: float | np.ndarray) -> np.ndarray:
        return self.params_coefficient * np.asarray(compute, float) ** self.params_exponent

    def examples_at(self, compute: float | np.ndarray) -> np.ndarray:
        return self.examples_coefficient * np.asarray(compute, float) ** self.examples_exponent


@dataclass(frozen=True)
class SizeCurve:
    """One model size's error over compute at a fixed T: its runs at different N."""

    log_params: float
    log_compute: np.ndarray  # (runs,) increasing
    log_error: np.ndarray  # (runs,)
    log_compute_per_example: float  # ln(C / N) = ln(3·FLOP(f)·T), one value per size

    def covers(self, log_budget: float) -> bool:
        return bool(self.log_compute[0] <= log_budget <= self.log_compute[-1])

    def log_error_at(self, log_budget: float) -> float:
        return float(np.interp(log_budget, self.log_compute, self.log_error))


def size_curves(
    compute: np.ndarray, params: np.ndarray, examples: np.ndarray, error: np.ndarray
) -> list[SizeCurve]:
    """One curve per distinct P, in order of P; of points at equal (P, C) the lowest error."""
    curves = []
    for size in np.unique(params):
        at = params == size
        log_c, inverse = np.unique(np.log(compute[at]), return_inverse=True)
        best = np.full(len(log_c), np.inf)
        np.minimum.at(best, inverse, np.log(error[at]))
        per_example = float(np.median(np.log(compute[at] / examples[at])))
        curves.append(SizeCurve(float(np.log(size)), log_c, best, per_example))
    return curves


def _vertex(x: np.ndarray, y: np.ndarray) -> float:
    """The minimum of the parabola through three points (x increasing, y[1] lowest), which
    lies between x[0] and x[2]; NaN when the three are level."""
    (x0, x1, x2), (y0, y1, y2) = x, y
    num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    return float(x1 - 0.5 * num / den) if den != 0 else float("nan")


def locate_minima(
    curves: list[SizeCurve], log_budgets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """At each budget the sizes that reach it, the best of them and its neighbours: ln C,
    ln P* and ln N* where the best has a smaller and a larger size beside it, and how many
    budgets had three or more sizes but their best at the smallest ('low') or largest
    ('high') of them."""
    found, edge = [], {"low": 0, "high": 0, "compared": 0}
    for log_c in log_budgets:
        here = [c for c in curves if c.covers(log_c)]
        if len(here) < 3:
            continue
        edge["compared"] += 1
        log_e = np.array([c.log_error_at(log_c) for c in here])
        i = int(np.argmin(log_e))
        if i == 0 or i == len(here) - 1:
            edge["low" if i == 0 else "high"] += 1
            continue
        near = here[i - 1 : i + 2]
        log_p = np.array([c.log_params for c in near])
        v = _vertex(log_p, log_e[i - 1 : i + 2])
        if not np.isfinite(v):  # three equal errors: no minimum to locate
            continue
        per_example = np.interp(v, log_p, [c.log_compute_per_example for c in near])
        found.append((log_c, v, log_c - per_example))
    rows = np.array(found).reshape(-1, 3)
    return rows[:, 0], rows[:, 1], rows[:, 2], edge


def fit_allocation(
    epochs: float,
    compute: np.ndarray,
    params: np.ndarray,
    examples: np.ndarray,
    error: np.ndarray,
) -> Allocation:
    """Approach 1 on points that all have T = ``epochs``: power laws of the located P*(C) and
    N*(C) (see the module's docstring)."""
    curves = size_curves(compute, params, examples, error)
    log_budgets = np.linspace(np.log(compute.min()), np.log(compute.max()), ALLOCATION_BUDGETS)
    log_c, log_p, log_n, edge = locate_minima(curves, log_budgets)
    decades = float(np.ptp(log_c) / np.log(10)) if len(log_c) else 0.0
    if len(log_c) < MIN_LOCATED_BUDGETS or decades < MIN_LOCATED_DECADES:
        raise FitError(
            f"the allocation at T={epochs:g} needs P*(C) located over at least "
            f"{MIN_LOCATED_DECADES:g} decades of compute, at budgets where three or more model "
            f"sizes have runs and the best has a smaller and a larger size beside it; found "
            f"{len(log_c)} such budgets over {decades:.2f} decades ({len(curves)} model sizes; "
            f"{_edge_summary(edge)}): train {_sizes_to_add(edge)}"
        )
    k_p, a = fit_log_linear(np.exp(log_c), np.exp(log_p))
    k_n, b = fit_log_linear(np.exp(log_c), np.exp(log_n))
    warnings = located_share_warnings(epochs, len(log_c), edge)
    minima = tuple(map(tuple, np.exp(np.column_stack([log_c, log_p, log_n])).tolist()))
    return Allocation(epochs, k_p, a, k_n, b, minima, warnings)


def _edge_summary(edge: dict[str, int]) -> str:
    return (
        f"of {edge['compared']} budgets with three or more sizes, {edge['low']} had their best at "
        f"the smallest size there and {edge['high']} at the largest"
    )


def located_share_warnings(epochs: float, located: int, edge: dict[str, int]) -> tuple[str, ...]:
    """Where the best size was the smallest (or largest) that reached a budget, P* lies beyond
    the grid there and Approach 1 has no minimum to read: when that holds for more than
    1 - LOCATED_SHARE_WARNING of the budgets where sizes compete, P*(C) describes only the
    rest, and a warning says which sizes to add."""
    if edge["compared"] == 0 or located / edge["compared"] >= LOCATED_SHARE_WARNING:
        return ()
    return (
        f"allocation: at T={epochs:g}, P*(C) is located at only {located} of the "
        f"{edge['compared']} budgets where three or more model sizes have runs; at the others "
        f"P* lies beyond the grid's sizes, so the power laws describe a part of the compute "
        f"range only; train {_sizes_to_add(edge)}",
    )


def _sizes_to_add(edge: dict[str, int]) -> str:
    """Which sizes would bracket the minimum where the best size sat at the grid's edge."""
    fixes = []
    if edge["low"]:
        fixes.append("smaller models (the best size was the smallest that reached a budget)")
    if edge["high"]:
        fixes.append("larger models (the best size was the largest that reached a budget)")
    return " and ".join(fixes) or "three or more model sizes at the same compute"


@dataclass(frozen=True)
class ParametricFit:
    """E(P, N) = E + A/P^alpha + B/N^beta; ``theta`` = (a, b, e, alpha, beta) in centred
    logs (log P - log_p_ref, log N - log_n_ref), the vector used to warm-start resamples."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    params_exponent: float
    examples_exponent: float
    theta: tuple[float, ...]
    log_p_ref: float
    log_n_ref: float
    loss: float
    warnings: tuple[str, ...] = ()

    def predict(self, params: np.ndarray, examples: np.ndarray) -> np.ndarray:
        return (
            self.E
            + self.A * np.asarray(params, float) ** -self.alpha
            + self.B * np.asarray(examples, float) ** -self.beta
        )


def start_grid(log_p_ref: float, log_n_ref: float) -> np.ndarray:
    """Besiroglu et al.'s starts (raw a, b, e, alpha, beta), moved to centred logs: (4500, 5)."""
    grid = np.array(list(itertools.product(GRID_A, GRID_B, GRID_E, GRID_ALPHA, GRID_BETA)))
    # a - alpha·log P = (a - alpha·log_p_ref) - alpha·(log P - log_p_ref)
    grid[:, 0] -= grid[:, 3] * log_p_ref
    grid[:, 1] -= grid[:, 4] * log_n_ref
    return grid


def _lbfgs(
    theta0: np.ndarray, data: tuple[np.ndarray, ...], analytic_gradient: bool
):  # -> OptimizeResult | None
    bounds = [(None, None)] * 3 + [EXPONENT_BOUNDS] * 2
    with np.errstate(over="ignore", invalid="ignore"):
        if analytic_gradient:
            res = minimize(
                parametric_objective,
                theta0,
                args=data,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options=LBFGS_OPTIONS,
            )
        else:
            res = minimize(
                lambda t, *d: parametric_objective(t, *d)[0],
                theta0,
                args=data,
                method="L-BFGS-B",
                bounds=bounds,
                options=LBFGS_OPTIONS,
            )
    if not np.isfinite(res.fun):
        return None
    grad = parametric_objective(res.x, *data)[1]
    at_bound = np.zeros(5, bool)
    at_bound[3:] = (res.x[3:] <= EXPONENT_BOUNDS[0]) & (grad[3:] > 0)
    small = np.abs(np.where(at_bound, 0.0, grad)).max() <= GRADIENT_TOLERANCE * len(data[0])
    return res if res.success or small else None


def fit_parametric(
    params: np.ndarray,
    examples: np.ndarray,
    error: np.ndarray,
    *,
    start: ParametricFit | None = None,
    analytic_gradient: bool = True,
) -> ParametricFit:
    """Approach 3. Without ``start``: L-BFGS-B from the best grid starts; each run must move and
    converge. With ``start`` (a fit on the full data): one run from its optimum, for resamples."""
    n_p, n_n = len(np.unique(params)), len(np.unique(examples))
    if len(error) < PARAMETRIC_PARAMS + 1 or n_p < 2 or n_n < 2:
        raise FitError(
            f"the parametric fit needs at least {PARAMETRIC_PARAMS + 1} points with 2 model "
            f"sizes and 2 dataset sizes; found {len(error)} points, {n_p} model sizes and "
            f"{n_n} dataset sizes"
        )
    if start is None:
        log_p_ref, log_n_ref = float(np.mean(np.log(params))), float(np.mean(np.log(examples)))
    else:
        log_p_ref, log_n_ref = start.log_p_ref, start.log_n_ref
    data = (np.log(params) - log_p_ref, np.log(examples) - log_n_ref, np.log(error))
    if start is None:
        grid = start_grid(log_p_ref, log_n_ref)
        with np.errstate(over="ignore", invalid="ignore"):
            screened = parametric_objective_batch(grid, *data)
        starts = grid[np.argsort(screened)[:LBFGS_STARTS]]
    else:
        starts = np.array([start.theta])
    best = None
    for theta0 in starts:
        res = _lbfgs(theta0, data, analytic_gradient)
        if res is None or (start is None and np.array_equal(res.x, theta0)):
            continue
        if best is None or res.fun < best.fun:
            best = res
    if best is None:
        raise FitError(
            f"the parametric fit did not converge from any of {len(starts)} starts on "
            f"{len(error)} points"
        )
    a, b, e, alpha, beta = best.x
    a_exp, b_exp = implied_allocation_exponents(alpha, beta)
    return ParametricFit(
        E=float(np.exp(e)),
        A=float(np.exp(a + alpha * log_p_ref)),
        B=float(np.exp(b + beta * log_n_ref)),
        alpha=float(alpha),
        beta=float(beta),
        params_exponent=float(a_exp),
        examples_exponent=float(b_exp),
        theta=tuple(float(v) for v in best.x),
        log_p_ref=log_p_ref,
        log_n_ref=log_n_ref,
        loss=float(best.fun),
        warnings=unbounded_e_warnings(float(np.exp(e)), error),
    )


def unbounded_e_warnings(e_fitted: float, error: np.ndarray) -> tuple[str, ...]:
    """When E falls to nothing against the errors fitted, the fit has moved the whole error
    into the P and N terms; if the error has a floor, alpha and beta come out low: say so."""
    lowest = float(error.min())
    if e_fitted >= UNBOUNDED_E_SHARE * lowest:
        return ()
    return (
        f"parametric: the irreducible error E fell to {e_fitted:.2g}, against a lowest fitted "
        f"error of {lowest:.4g}: these points show no floor, so E(P, N) puts all of the error "
        "in its P and N terms; if the error has a floor, alpha and beta (and the P*, N* "
        "exponents from them) come out low, and points at larger P and N would bound it",
    )
