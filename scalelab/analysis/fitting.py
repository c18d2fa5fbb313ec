"""Least-squares fits of the saturating power law E(x) = a (b + x)^-alpha + E_inf.

Done the way that does not fail silently: x is rescaled to a reference (its geometric mean),
several starts are tried, and a fit that did not converge, or that returned its start
untouched, is an error rather than a result.

Two losses (``loss``): "log", the default, takes residuals in log E (errors span decades; a
linear residual would let the largest errors decide the fit), and "linear" is plain least
squares on E, what SciPy's curve_fit does with the paper's Eq. 5 (Appendix A.4).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from scalelab.analysis.laws import saturating_power_law
from scalelab.errors import FitError

TOLERANCE = 1e-12  # curve_fit's ftol/xtol: tight, so a flat valley is not a stopping point
# A larger exponent is no scaling law but a step (and a = a_s·x_ref^alpha would overflow).
ALPHA_MAX = 10.0
# Where a bound b = 0 or E_inf = 0 is released (see _fit_from), the parameter restarts this far
# inside, relative to the smallest x or error.
RELEASE_STEP = 1e-3

PINNED = 1e-12  # b or E_inf below this (relative) counts as at its bound 0
LOSSES = ("log", "linear")  # residuals in log E (default) or in E (the paper's curve_fit)

Params = tuple[float, float, float, float]  # (a_s, b_s, alpha, E_inf), x in units of x_ref


def min_points(n_params: int) -> int:
    """At least one degree of freedom: n_params + 1 points."""
    return n_params + 1


@dataclass(frozen=True)
class PowerLawFit:
    """E(x) = a (b + x)^-alpha + E_inf, fitted as a_s (b_s + x/x_ref)^-alpha + E_inf.

    ``scaled`` holds (a_s, b_s, alpha, E_inf) in units of x_ref, the parameters used to
    warm-start bootstrap resamples; b is 0 for an unshifted law.
    """

    a: float
    b: float
    alpha: float
    e_inf: float
    x_ref: float
    scaled: Params
    r2: float | None  # in the space of the loss: of log E for "log", of E for "linear"
    shift: bool
    loss: str = "log"

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return saturating_power_law(np.asarray(x, float) / self.x_ref, *self.scaled)


# The bounds a, b, E_inf >= 0 and alpha > 0 are kept by an active set. A bounded parameter is
# either pinned at 0 or free; curve_fit works on unconstrained coordinates of the free ones,
# u = (log a_s, sqrt b_s, log alpha, sqrt E_inf), so MINPACK's Levenberg-Marquardt applies
# (~5x faster than curve_fit's bounded "trf", which matters for a thousand bootstrap
# resamples). Pinning matters too: a parameter whose optimum is the bound 0 would otherwise
# crawl towards it through sqrt coordinates for thousands of evaluations.


def _to_u(p: Params, free_b: bool, free_e: bool) -> np.ndarray:
    a_s, b_s, alpha, e_inf = p
    u = [math.log(a_s)]
    if free_b:
        u.append(math.sqrt(b_s))
    u.append(math.log(alpha))
    if free_e:
        u.append(math.sqrt(e_inf))
    return np.array(u)


def _model(free_b: bool, free_e: bool, loss: str):
    """The fitted function of u (log E(x) for the log loss, E(x) for the linear one), its
    Jacobian in u, and u -> parameters, for curve_fit. Written out rather than composed from
    laws.py: these run ~20 times per fit and Python overhead dominates them."""
    linear = loss == "linear"

    def params(u: Sequence[float]) -> tuple[float, float, float, float]:
        """(a_s, sqrt b_s, alpha, sqrt E_inf) from u, with 0 for a pinned parameter."""
        u_b = u[1] if free_b else 0.0
        # exp capped at e^700 ~ 1e304: a trial step that far out is rejected, not an overflow.
        a, alpha = math.exp(min(u[0], 700.0)), math.exp(min(u[1 + free_b], 700.0))
        return a, u_b, alpha, u[-1] if free_e else 0.0

    def law(x: np.ndarray, *u: float) -> np.ndarray:
        a, u_b, alpha, u_e = params(u)
        with np.errstate(over="ignore", divide="ignore"):
            value = a * (u_b * u_b + x) ** -alpha + u_e * u_e
            return value if linear else np.log(value)

    def jacobian(x: np.ndarray, *u: float) -> np.ndarray:
        a, u_b, alpha, u_e = params(u)
        shifted = u_b * u_b + x  # b + x
        term = a * shifted**-alpha  # a (b + x)^-alpha
        value = term + u_e * u_e
        share = term / value  # d log E / d log a
        jac = np.empty((len(x), len(u)))  # (n, free parameters)
        jac[:, 0] = share
        if free_b:
            jac[:, 1] = -2 * u_b * alpha * share / shifted  # d/db · db/du
        jac[:, 1 + free_b] = -alpha * share * np.log(shifted)  # d/dalpha · dalpha/du
        if free_e:
            jac[:, -1] = 2 * u_e / value  # d/dE_inf · dE_inf/du
        return jac * value[:, None] if linear else jac  # dE/du = E · d log E/du

    def to_params(u: Sequence[float]) -> Params:
        a, u_b, alpha, u_e = params(u)
        return (a, u_b * u_b, alpha, u_e * u_e)

    return law, jacobian, to_params


def _starts(x: np.ndarray, y: np.ndarray, shift: bool) -> list[Params]:
    """A grid over (alpha, E_inf, b); a_s from a log-space least-squares line for each."""
    starts = []
    b_values = (0.0, float(x.min())) if shift else (0.0,)
    for alpha, e_frac, b_s in itertools.product((0.1, 0.3, 1.0), (0.0, 0.5, 0.9), b_values):
        e_inf = e_frac * float(y.min())
        log_a = np.mean(np.log(np.maximum(y - e_inf, 1e-12 * y)) + alpha * np.log(b_s + x))
        starts.append((float(np.exp(np.clip(log_a, -700, 700))), b_s, alpha, e_inf))
    return starts


def start_count(shift: bool) -> int:
    """How many starts an unwarmed fit tries (the fit card reports it)."""
    return len(_starts(np.ones(1), np.ones(1), shift))


def _curve_fit(
    x: np.ndarray,
    target: np.ndarray,
    p0: Params,
    free_b: bool,
    free_e: bool,
    analytic_gradient: bool,
    loss: str,
) -> tuple[Params, np.ndarray] | None:
    """One curve_fit from p0 with b and E_inf free or pinned at 0 to ``target`` (log E or E,
    as ``loss``): (parameters, residuals), None if it did not converge."""
    law, jacobian, to_params = _model(free_b, free_e, loss)
    try:
        u0 = _to_u(p0, free_b, free_e)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # covariance of a 0-dof fit
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow at a rejected trial step
            u, _, _, _, status = curve_fit(
                law,
                x,
                target,
                p0=u0,
                jac=jacobian if analytic_gradient else None,
                method="lm",
                full_output=True,
                ftol=TOLERANCE,
                xtol=TOLERANCE,
                maxfev=500 * len(u0),
            )
    except (RuntimeError, ValueError):  # not converged; non-finite start (a_s underflowed to 0)
        return None
    if status not in (1, 2, 3, 4) or not np.all(np.isfinite(u)):
        return None
    residual = law(x, *u) - target
    return (to_params(u), residual) if np.all(np.isfinite(residual)) else None


def _fit_from(
    x: np.ndarray,
    y: np.ndarray,
    start: Params,
    shift: bool,
    analytic_gradient: bool,
    loss: str,
) -> tuple[Params, float] | None:
    """Fit from ``start``, where b = 0 or E_inf = 0 pins that parameter at its bound; release a
    pinned parameter when the Karush-Kuhn-Tucker condition fails (the squared error falls as it
    moves into the feasible side) and refit. Returns (parameters, sum of squared residuals)."""
    # A start at (or within rounding of) a bound is pinned there; the KKT check may release it.
    free_b = shift and start[1] > PINNED * float(x.min())
    free_e = start[3] > PINNED * float(y.min())
    target = y if loss == "linear" else np.log(y)
    p = start
    for _ in range(3):  # at most: fit, release one bound, release the other
        result = _curve_fit(x, target, p, free_b, free_e, analytic_gradient, loss)
        if result is None:
            return None
        p, residual = result
        a_s, b_s, alpha, e_inf = p
        value = saturating_power_law(x, *p)
        term = value - e_inf
        # d(sum of squares)/d(bound parameter) at 0, from d log E (times E for the linear
        # loss); negative means moving off 0 helps.
        weight = residual * value if loss == "linear" else residual
        release_b = shift and not free_b and float(weight @ (-alpha * term / (b_s + x) / value)) < 0
        release_e = not free_e and float(weight @ (1 / value)) < 0
        if not (release_b or release_e):
            return p, float(residual @ residual)
        free_b, free_e = free_b or release_b, free_e or release_e
        p = (
            a_s,
            RELEASE_STEP * float(x.min()) if release_b else b_s,
            alpha,
            RELEASE_STEP * float(y.min()) if release_e else e_inf,
        )
    return None


def _is_degenerate(xs: np.ndarray, scaled: Params) -> bool:
    """A step (alpha beyond ALPHA_MAX) or a constant (the power-law term changes E by a
    negligible fraction over the points): what a fit returns when the error does not fall."""
    if scaled[2] > ALPHA_MAX:
        return True
    ends = saturating_power_law(np.array([xs.min(), xs.max()]), *scaled)
    return bool(ends[0] - ends[1] <= 1e-9 * ends[0])


def fit_power_law(
    x: np.ndarray,
    y: np.ndarray,
    *,
    shift: bool,
    what: str,
    x_ref: float | None = None,
    start: Sequence[float] | None = None,
    analytic_gradient: bool = True,
    loss: str = "log",
) -> PowerLawFit:
    """Fit E(x) = a (b + x)^-alpha + E_inf (b = 0 unless ``shift``) to positive (x, y), with
    residuals in log E (``loss="log"``) or in E (``"linear"``, the paper's curve_fit).

    Without ``start``: several starts, the best converged one wins, and it must have moved
    from its start. With ``start`` (scaled parameters of an earlier fit, same ``x_ref``): one
    warm-started run, as for bootstrap resamples, where staying at the start is legitimate.
    Raises FitError naming ``what`` if no run converged.
    """
    if loss not in LOSSES:
        raise FitError(f"unknown loss {loss!r} for the {what}; use one of {', '.join(LOSSES)}")
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x_ref = float(np.exp(np.mean(np.log(x)))) if x_ref is None else x_ref
    xs = x / x_ref
    starts = [tuple(start)] if start is not None else _starts(xs, y, shift)
    best: tuple[Params, float] | None = None
    degenerate = 0
    for p0 in starts:
        result = _fit_from(xs, y, p0, shift, analytic_gradient, loss)
        if result is None or (start is None and result[0] == p0):
            continue
        if _is_degenerate(xs, result[0]):
            degenerate += 1
            continue
        if best is None or result[1] < best[1]:
            best = result
    if best is None and degenerate:
        raise FitError(
            f"the {what} has no decreasing power law through these {len(x)} points (the best "
            "fit is flat or a step); check that the error falls as the runs grow"
        )
    if best is None:
        raise FitError(
            f"the {what} did not converge from any of {len(starts)} starts on {len(x)} points "
            "(errors that hardly change with x do this); check the points with "
            "`scalelab fit --json` or add runs that extend the range"
        )
    (a_s, b_s, alpha, e_inf), sse = best
    target = y if loss == "linear" else np.log(y)
    ss_tot = float(np.sum((target - target.mean()) ** 2))
    return PowerLawFit(
        a=a_s * x_ref**alpha,
        b=b_s * x_ref,
        alpha=alpha,
        e_inf=e_inf,
        x_ref=x_ref,
        scaled=(a_s, b_s, alpha, e_inf),
        r2=1.0 - sse / ss_tot if ss_tot > 0 else None,
        shift=shift,
        loss=loss,
    )


def holdout_log_rmse(
    x: np.ndarray,
    y: np.ndarray,
    *,
    shift: bool,
    what: str,
    quantile: float = 0.8,
    loss: str = "log",
) -> float:
    """Fit (with ``loss``) on the points with x at or below the ``quantile`` of x, predict the
    rest, and return the root-mean-square error of log predictions: how well the law
    extrapolates."""
    cut = np.quantile(x, quantile)
    inside = x <= cut
    n_params = 4 if shift else 3
    if inside.sum() < min_points(n_params) or inside.all():
        raise FitError(
            f"the {what} hold-out needs {min_points(n_params)} points below the "
            f"{quantile:.0%} quantile of compute and at least one above; found "
            f"{int(inside.sum())} below and {int((~inside).sum())} above"
        )
    fit = fit_power_law(x[inside], y[inside], shift=shift, what=f"{what} (hold-out)", loss=loss)
    residual = np.log(fit.predict(x[~inside])) - np.log(y[~inside])
    return float(np.sqrt(np.mean(residual**2)))


def fit_log_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y = k x^m by least squares on logs: (k, m). Centred, so 1e20-sized x loses no precision."""
    lx, ly = np.log(x), np.log(y)
    cx, cy = lx.mean(), ly.mean()
    m = float(np.sum((lx - cx) * (ly - cy)) / np.sum((lx - cx) ** 2))
    return float(np.exp(cy - m * cx)), m
