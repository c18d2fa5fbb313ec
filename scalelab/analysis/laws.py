"""The law forms fitted by scalelab, with their analytic derivatives.

- Saturating power law (paper Eq. 5): E(x) = a (b + x)^-alpha + E_inf. With x = compute C it is
  the compute law; with b = 0 and x = P or N it is a bottleneck law (paper Fig. 7).
- Parametric law (Chinchilla Approach 3): E(P, N) = E + A/P^alpha + B/N^beta, evaluated in log
  space as LSE(a - alpha log P, b - beta log N, e) with A = exp(a), B = exp(b), E = exp(e).

Everything here works in rescaled units (x / x_ref, log P - log P_ref): compute spans 1e12-1e21,
and a power law evaluated on raw FLOPs has gradients too small for an optimiser to move.
"""

from __future__ import annotations

import numpy as np

from scalelab.errors import FitError

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022 and Besiroglu et al. 2024


def saturating_power_law(x: np.ndarray, a: float, b: float, alpha: float, e_inf: float):
    """E(x) = a (b + x)^-alpha + E_inf."""
    return a * (b + x) ** -alpha + e_inf


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss: quadratic within delta, linear outside."""
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def parametric_log_error(
    theta: np.ndarray, log_p: np.ndarray, log_n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log E(P, N) for theta = (a, b, e, alpha, beta) and the softmax weights of its three terms.

    ``log_p``, ``log_n`` (n,) are centred logs; returns (pred (n,), weights (3, n)).
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_p, b - beta * log_n, np.full_like(log_p, e)])  # (3, n)
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    return top + np.log(total), w / total


def parametric_objective(
    theta: np.ndarray, log_p: np.ndarray, log_n: np.ndarray, log_e: np.ndarray
) -> tuple[float, np.ndarray]:
    """Huber loss summed over points (not averaged: an averaged loss is tiny and L-BFGS-B's
    relative tolerance then stops it early, the error Besiroglu et al. found in Chinchilla's fit),
    and its analytic gradient with respect to theta = (a, b, e, alpha, beta)."""
    pred, w = parametric_log_error(theta, log_p, log_n)
    r = pred - log_e
    dr = np.clip(r, -HUBER_DELTA, HUBER_DELTA)  # Huber'(r)
    gw = w * dr  # (3, n)
    grad = np.array([gw[0].sum(), gw[1].sum(), gw[2].sum(), -(gw[0] @ log_p), -(gw[1] @ log_n)])
    return float(huber(r).sum()), grad


def parametric_objective_batch(
    thetas: np.ndarray, log_p: np.ndarray, log_n: np.ndarray, log_e: np.ndarray
) -> np.ndarray:
    """parametric_objective's value for many thetas (k, 5) at once: (k,)."""
    a, b, e, alpha, beta = (thetas[:, i : i + 1] for i in range(5))
    pred = np.logaddexp(np.logaddexp(a - alpha * log_p, b - beta * log_n), e)  # (k, n)
    return huber(pred - log_e).sum(axis=1)


def implied_allocation_exponents(alpha: float, beta: float) -> tuple[float, float]:
    """P*(C) ∝ C^a, N*(C) ∝ C^b minimising E + A/P^alpha + B/N^beta subject to C ∝ P·N.

    Setting the derivative along P·N = const to zero gives alpha A/P^alpha = beta B/N^beta,
    hence a = beta/(alpha+beta) and b = alpha/(alpha+beta) (Hoffmann et al. 2022, Eq. 4).
    """
    if alpha + beta <= 0:
        raise FitError(
            "the parametric fit has alpha = beta = 0: neither P nor N lowers the error in these "
            "points, so there is no compute-optimal allocation"
        )
    return beta / (alpha + beta), alpha / (alpha + beta)
