"""The fitted laws as curves to draw, evaluated from the numbers a fit result stores.

`scalelab.analysis.fit_scaling` stores every law in raw units (C in FLOPs, P, N), so the laws
are evaluated here with the analysis' own law functions on a grid over the data's range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalelab.analysis.bootstrap import CONFIDENCE, MIN_SUCCESS_SHARE
from scalelab.analysis.laws import saturating_power_law

CURVE_POINTS = 200


def log_grid(low: float, high: float) -> np.ndarray:
    return np.geomspace(float(low), float(high), CURVE_POINTS)


def compute_law_curve(law: dict[str, Any], compute: np.ndarray) -> np.ndarray:
    """E(C) = a(b + C)^-α + E∞ (paper Eq. 5), C in FLOPs (MAC convention)."""
    return saturating_power_law(compute, law["a"], law["b"], law["alpha"], law["e_inf"])


def compute_law_band(
    fit: dict[str, Any], compute: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The pointwise 95% bootstrap band of E(C): at each C, the percentiles of the laws fitted
    on the resamples (fit_scaling keeps each as (a, b, α, E∞) in bootstrap_samples), with the
    rule `scalelab plan` applies at one budget: no band when fewer than half could be fitted."""
    rows = (fit.get("bootstrap_samples") or {}).get("compute_law") or []
    draws = np.array(rows, dtype=float).reshape(len(rows), 4)  # None -> nan
    resamples = (fit.get("bootstrap") or {}).get("resamples", len(draws))
    draws = draws[np.isfinite(draws).all(axis=1)]
    if len(draws) < 2 or len(draws) < MIN_SUCCESS_SHARE * resamples:
        return None
    a, b, alpha, e_inf = (draws[:, i : i + 1] for i in range(4))  # (k, 1) each
    with np.errstate(over="ignore", invalid="ignore"):
        curves = saturating_power_law(compute[None, :], a, b, alpha, e_inf)  # (k, n)
    tail = 100 * (1 - CONFIDENCE) / 2
    lower, upper = np.nanpercentile(curves, [tail, 100 - tail], axis=0)
    return lower, upper


def power_law_curve(law: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """E(x) = a·x^-α + E∞: the bottleneck laws of Fig. 7 (x = P or N)."""
    return saturating_power_law(x, law["a"], 0.0, law["alpha"], law["e_inf"])


def parametric_optimum(law: dict[str, Any], budget: np.ndarray) -> np.ndarray:
    """P that minimises A/P^α + B/N^β subject to P·N = budget (closed form):
    P* = (αA / (βB))^(1/(α+β)) · budget^(β/(α+β)); the exponent is the fit's params_exponent."""
    alpha, beta = law["alpha"], law["beta"]
    scale = (alpha * law["A"] / (beta * law["B"])) ** (1.0 / (alpha + beta))
    return scale * budget ** (beta / (alpha + beta))
