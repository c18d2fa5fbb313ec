"""How to split compute between parameters P and examples N (Hoffmann et al. 2022).

- Approach 1 (paper Fig. 8): at a fixed T, the frontier's P and N against C, each a power law.
  On a grid the frontier can run along an edge (the largest N, or the largest P) only because
  the grid offers nothing beyond it; its exponents then describe the grid, and a warning says
  so.
- Approach 3: E(P, N) = E + A/P^alpha + B/N^beta over all points at that T, fitted as
  Besiroglu et al. 2024 re-fitted Chinchilla: Huber loss (delta = 1e-3) on log E, summed over
  points, L-BFGS-B from a grid of starts with tolerances tight enough not to stop early.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from scalelab.analysis.fitting import fit_log_linear
from scalelab.analysis.frontier import frontier_indices
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
# Approach 1 warns when the frontier runs along a grid edge for this share of its log-compute
# range: one or two corner points at the top barely move the slope, half the range decides it.
EDGE_SPAN_WARNING = 0.25


@dataclass(frozen=True)
class Allocation:
    """P*(C) = params_coefficient · C^params_exponent, likewise N*(C), at ``epochs``."""

    epochs: float
    params_coefficient: float
    params_exponent: float
    examples_coefficient: float
    examples_exponent: float
    n_points: int
    warnings: tuple[str, ...] = ()  # one line per grid edge the frontier runs along

    def params_at(self, compute: float | np.ndarray) -> np.ndarray:
        return self.params_coefficient * np.asarray(compute, float) ** self.params_exponent

    def examples_at(self, compute: float | np.ndarray) -> np.ndarray:
        return self.examples_coefficient * np.asarray(compute, float) ** self.examples_exponent


def fit_allocation(
    epochs: float,
    compute: np.ndarray,
    params: np.ndarray,
    examples: np.ndarray,
    error: np.ndarray,
) -> Allocation:
    """Approach 1 on points that all have T = ``epochs``: power laws of the frontier's P and N."""
    front = frontier_indices(compute, error)
    n_params, n_examples = len(np.unique(params[front])), len(np.unique(examples[front]))
    if len(front) < 3 or n_params < 2 or n_examples < 2:
        raise FitError(
            f"the allocation at T={epochs:g} needs at least 3 frontier points with 2 model sizes "
            f"and 2 dataset sizes; found {len(front)} points, {n_params} model sizes and "
            f"{n_examples} dataset sizes on the frontier at that T"
        )
    k_p, a = fit_log_linear(compute[front], params[front])
    k_n, b = fit_log_linear(compute[front], examples[front])
    warnings = grid_edge_warnings(epochs, compute, params, examples, front)
    return Allocation(epochs, k_p, a, k_n, b, len(front), warnings)


def grid_edge_warnings(
    epochs: float, compute: np.ndarray, params: np.ndarray, examples: np.ndarray, front: np.ndarray
) -> tuple[str, ...]:
    """Where the frontier runs along the grid's largest N (or largest P), it grows only the
    other axis because no run goes further, whatever the optimum: P*(C) and N*(C) there follow
    the grid's edge. Every product grid ends in its corner, so only an edge run that covers
    EDGE_SPAN_WARNING of the frontier's log-compute range (the leverage of a log-log slope)
    is flagged. On the demo's first Zipf grid the frontier ran along N = 256k for 49% of its
    range and Approach 1 gave P* ∝ C^0.47 with a near-zero interval, E(P, N) C^0.1."""
    log_c = np.log(compute[front])
    span = log_c.max() - log_c.min()
    edges = (
        ("N", examples, "P", "train the smaller models on more examples"),
        ("P", params, "N", "train larger models"),
    )
    warnings = []
    for axis, values, other, fix in edges:
        on_edge = values[front] == values.max()
        share = np.ptp(log_c[on_edge]) / span if on_edge.sum() >= 2 and span > 0 else 0.0
        if share >= EDGE_SPAN_WARNING:
            warnings.append(
                f"allocation: the frontier at T={epochs:g} runs along the grid's largest {axis} "
                f"({values.max():.6g}) for {share:.0%} of its log-compute range "
                f"({int(on_edge.sum())} of {len(front)} points), where it can grow only {other}: "
                f"P*(C) and N*(C) follow the grid's edge there, not the optimum; {fix} until "
                f"the frontier leaves that edge"
            )
    return tuple(warnings)


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
