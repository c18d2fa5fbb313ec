"""Chinchilla Approach 3, E(P, N) = E + A/P^alpha + B/N^beta, fitted as Besiroglu et al. do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import fit_scaling
from scalelab.analysis.blas import one_blas_thread
from scalelab.analysis.chinchilla import fit_allocation, fit_parametric
from scalelab.analysis.laws import implied_allocation_exponents, parametric_objective
from scalelab.analysis.synthetic import KnownLaw, synthetic_runs
from scalelab.errors import FitError

EXTERNAL = Path(__file__).parent / "data"  # copies of the public data in shared/external


def grid(law: KnownLaw, noise: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    p, n = np.meshgrid(np.geomspace(1e6, 1e10, 9), np.geomspace(1e4, 1e10, 9))
    p, n = p.ravel(), n.ravel()
    error = law.error(p, n, np.ones_like(p))
    error *= np.exp(noise * np.random.default_rng(seed).standard_normal(len(p)))
    return p, n, error


def test_objective_gradient_is_analytic_and_right() -> None:
    rng = np.random.default_rng(1)
    log_p, log_n = rng.normal(0, 1.5, 40), rng.normal(0, 2.0, 40)
    log_e = rng.normal(-1.0, 0.3, 40)
    theta = np.array([-1.2, -0.7, -2.0, 0.6, 0.4])
    _, grad = parametric_objective(theta, log_p, log_n, log_e)
    h = 1e-7
    numeric = [
        (
            parametric_objective(theta + h * e, log_p, log_n, log_e)[0]
            - parametric_objective(theta - h * e, log_p, log_n, log_e)[0]
        )
        / (2 * h)
        for e in np.eye(5)
    ]
    assert np.allclose(grad, numeric, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize(("alpha", "beta"), [(0.9, 0.35), (0.34, 0.28)])
def test_known_parameters_and_implied_exponents_are_recovered(alpha: float, beta: float) -> None:
    law = KnownLaw(E=0.1, A=0.2 * 1e6**alpha, B=0.3 * 1e4**beta, alpha=alpha, beta=beta)
    with one_blas_thread:
        fit = fit_parametric(*grid(law, noise=0.005))
    assert fit.alpha == pytest.approx(alpha, abs=0.03)
    assert fit.beta == pytest.approx(beta, abs=0.02)
    assert pytest.approx(0.1, rel=0.05) == fit.E
    a, b = implied_allocation_exponents(alpha, beta)
    assert fit.params_exponent == pytest.approx(a, abs=0.03)
    assert fit.examples_exponent == pytest.approx(b, abs=0.03)
    assert fit.params_exponent + fit.examples_exponent == pytest.approx(1.0)


def test_implied_exponents_minimise_the_law_at_fixed_compute() -> None:
    """a = beta/(alpha+beta): along P·N = C, the minimum of E(P, N) moves like C^a."""
    law = KnownLaw(E=0.0, A=400.0, B=400.0, alpha=0.34, beta=0.28)
    optima = []
    for c in (1e16, 1e20):
        p = np.geomspace(1e3, 1e14, 200_001)
        optima.append(p[np.argmin(law.error(p, c / p, np.ones_like(p)))])
    slope = np.log(optima[1] / optima[0]) / np.log(1e4)
    assert slope == pytest.approx(implied_allocation_exponents(0.34, 0.28)[0], abs=1e-3)


def test_warm_start_reproduces_the_full_fit() -> None:
    with one_blas_thread:
        data = grid(KnownLaw(), noise=0.01)
        full = fit_parametric(*data)
        warm = fit_parametric(*data, start=full)
    assert warm.alpha == pytest.approx(full.alpha, rel=1e-6)
    assert warm.loss == pytest.approx(full.loss, rel=1e-9)


def test_too_few_points_or_a_single_model_size() -> None:
    with pytest.raises(FitError) as info:
        fit_parametric(np.full(10, 1e6), np.geomspace(1e4, 1e7, 10), np.linspace(0.5, 0.3, 10))
    assert str(info.value) == (
        "the parametric fit needs at least 6 points with 2 model sizes and 2 dataset sizes; "
        "found 10 points, 1 model sizes and 10 dataset sizes"
    )


def test_allocation_exponents_of_a_law_with_a_known_optimum() -> None:
    # E = A/P^a + B/N^b at T = 50 with C = 3·P·N·T: P* ∝ C^(b/(a+b)) = C^0.35 exactly.
    alpha, beta = 0.65, 0.35
    p, n = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e9, 16), np.geomspace(1e6, 1e11, 26)))
    c = 3 * p * n * 50
    fit = fit_allocation(50.0, c, p, n, 1e3 * p**-alpha + 1e2 * n**-beta)
    assert fit.params_exponent == pytest.approx(0.35, abs=0.005)
    assert fit.examples_exponent == pytest.approx(0.65, abs=0.005)
    assert fit.n_budgets > 100 and fit.warnings == ()
    # N* is read where P* is, so P*·N*·3·T is the budget itself.
    assert fit.examples_at(1e22) * fit.params_at(1e22) * 3 * 50 == pytest.approx(1e22)
    with pytest.raises(FitError) as info:
        fit_allocation(50.0, c, np.full(len(c), 1e6), n, 1e2 * n**-beta)
    assert str(info.value) == (
        "the allocation at T=50 needs P*(C) located over at least 0.25 decades of compute, at "
        "budgets where three or more model sizes have runs and the best has a smaller and a "
        "larger size beside it; found 0 such budgets over 0.00 decades (1 model sizes; of 0 "
        "budgets with three or more sizes, 0 had their best at the smallest size there and 0 "
        "at the largest): train three or more model sizes at the same compute"
    )


def test_besiroglu_replication_of_chinchilla() -> None:
    """Besiroglu et al. 2024 re-fitted Chinchilla's Approach 3 on the 245 runs they extracted
    from its Fig. 4, without its 5 highest-loss runs: E = 1.82, A = 482.01, B = 2085.43,
    alpha = 0.3478, beta = 0.3658. The same procedure here must land on the same optimum."""
    path = EXTERNAL / "chinchilla_fig4_epoch_extraction.csv"
    df = pd.read_csv(path)
    df = df[df["loss"] < np.sort(df["loss"])[-5]]  # their exclusion of the 5 outliers
    params = df["Model Size"].to_numpy()
    tokens = df["Training FLOP"].to_numpy() / (6 * params)
    with one_blas_thread:
        fit = fit_parametric(params, tokens, df["loss"].to_numpy())
    assert len(df) == 240
    assert pytest.approx(1.82, abs=0.01) == fit.E
    assert pytest.approx(482.01, rel=0.02) == fit.A
    assert pytest.approx(2085.43, rel=0.04) == fit.B
    assert fit.alpha == pytest.approx(0.3478, abs=0.002)
    assert fit.beta == pytest.approx(0.3658, abs=0.002)
    # Their a = beta/(alpha+beta) ≈ 0.51: Chinchilla's "scale P and N equally".
    assert fit.params_exponent == pytest.approx(0.51, abs=0.01)


def test_a_floor_that_runs_to_zero_is_named_and_a_bounded_one_is_not() -> None:
    """Errors with no floor in sight (E = 0 in the law that made them) let E run to nothing;
    the fit says what that does to alpha and beta. With E = 0.1 it says nothing."""
    no_floor = KnownLaw(E=0.0, A=0.2 * 1e6**0.9, B=0.3 * 1e4**0.35, alpha=0.9, beta=0.35)
    p, n, error = grid(no_floor, noise=0.005)
    with one_blas_thread:
        fit = fit_parametric(p, n, error)
        bounded = fit_parametric(*grid(KnownLaw(E=0.1, A=0.2 * 1e6**0.9), noise=0.005))
    assert fit.E / error.min() < 1e-3
    assert fit.warnings == (
        f"parametric: the irreducible error E fell to {fit.E:.2g}, against a lowest fitted "
        f"error of {error.min():.4g}: these points show no floor, so E(P, N) puts all of the "
        "error in its P and N terms; if the error has a floor, alpha and beta (and the P*, N* "
        "exponents from them) come out low, and points at larger P and N would bound it",
    )
    assert bounded.warnings == ()


def test_scalelab_fit_passes_the_floor_note_on() -> None:
    runs = synthetic_runs(law=KnownLaw(E=0.0), noise=0.002)
    notes = fit_scaling(runs, "synthetic", bootstrap=0)["notes"]
    assert [n for n in notes if n.startswith("parametric: the irreducible error E fell to")]
