"""Saturating power-law fits: E(C) = a(b+C)^-alpha + E_inf (Eq. 5) and E(x) = a x^-alpha + E_inf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import fitting
from scalelab.analysis.fitting import fit_log_linear, fit_power_law, holdout_log_rmse
from scalelab.errors import FitError

EXTERNAL = Path(__file__).parent / "data"  # copies of the public data in shared/external


def law(c: np.ndarray, a: float, b: float, alpha: float, e_inf: float) -> np.ndarray:
    return a * (b + c) ** -alpha + e_inf


def noisy(values: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return values * np.exp(sigma * np.random.default_rng(seed).standard_normal(len(values)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compute_law_is_recovered_across_nine_decades_of_flop(seed: int) -> None:
    # The trap of Eq. 5 on raw FLOPs: gradients at C ~ 1e18 are too small for an optimiser to
    # move. Rescaled, the fit must find the law that generated the data.
    c = np.geomspace(1e12, 1e21, 30)
    true = {"a": 2e4, "b": 3e13, "alpha": 0.3, "e_inf": 0.12}
    fit = fit_power_law(c, noisy(law(c, **true), 0.005, seed), shift=True, what="compute law")
    assert fit.alpha == pytest.approx(0.3, abs=0.03)
    assert fit.e_inf == pytest.approx(0.12, rel=0.1)
    assert fit.r2 > 0.99
    assert np.allclose(fit.predict(c), law(c, **true), rtol=0.02)
    # a and b are reported in FLOP, not in the rescaled units the optimiser used.
    assert np.allclose(law(c, fit.a, fit.b, fit.alpha, fit.e_inf), fit.predict(c), rtol=1e-9)


def test_exact_data_is_fitted_exactly_and_the_fit_moved_from_its_starts() -> None:
    c = np.geomspace(1e15, 1e20, 12)
    y = law(c, 50.0, 0.0, 0.2, 0.05)
    fit = fit_power_law(c, y, shift=True, what="compute law")
    assert fit.alpha == pytest.approx(0.2, rel=1e-4)
    assert fit.e_inf == pytest.approx(0.05, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10)
    starts = fitting._starts(c / fit.x_ref, y, True)
    assert all(abs(s[2] - fit.alpha) > 1e-3 for s in starts)  # no start was already the answer


def test_bounds_hold_by_construction() -> None:
    # A slow logarithmic fall pushes the fit to its bounds (E_inf -> 0, alpha -> 0); a, b,
    # E_inf >= 0 and alpha > 0 hold anyway.
    x = np.geomspace(1, 1e4, 10)
    fit = fit_power_law(x, 0.3 - 0.001 * np.log(x), shift=True, what="compute law")
    assert fit.a >= 0 and fit.b >= 0 and 0 < fit.alpha <= fitting.ALPHA_MAX
    assert fit.e_inf >= 0
    assert fit.e_inf < 1e-6 and fit.alpha < 0.01


def test_an_error_that_rises_with_compute_is_no_law() -> None:
    x = np.geomspace(1, 1e4, 10)
    with pytest.raises(FitError) as info:
        fit_power_law(x, 0.1 + 0.01 * np.log(x), shift=True, what="compute law")
    assert str(info.value) == (
        "the compute law has no decreasing power law through these 10 points (the best fit is "
        "flat or a step); check that the error falls as the runs grow"
    )


@pytest.mark.parametrize(("alpha", "e_inf"), [(1.0, 0.05), (0.35, 0.1)])
def test_bottleneck_law_is_recovered(alpha: float, e_inf: float) -> None:
    # Fig. 7: E(P) with alpha_P ≈ 1, E(N) with alpha_N ≈ 0.35.
    x = np.geomspace(1e6, 1e9, 8)
    y = noisy(e_inf + 3.0 * (x / 1e6) ** -alpha, 0.003, seed=4)
    fit = fit_power_law(x, y, shift=False, what="params law")
    assert fit.alpha == pytest.approx(alpha, rel=0.05)
    assert fit.e_inf == pytest.approx(e_inf, rel=0.1)
    assert fit.b == 0.0


@pytest.mark.parametrize("free_b", [True, False])
@pytest.mark.parametrize("free_e", [True, False])
@pytest.mark.parametrize("loss", ["log", "linear"])
def test_analytic_jacobian_matches_finite_differences(free_b: bool, free_e: bool, loss) -> None:
    x = np.geomspace(0.01, 100, 9)
    fitted, jacobian, _ = fitting._model(free_b, free_e, loss)
    u = np.array([0.3] + [0.7] * free_b + [-0.8] + [0.4] * free_e)
    h = 1e-6
    numeric = np.column_stack(
        [(fitted(x, *(u + d)) - fitted(x, *(u - d))) / (2 * h) for d in np.eye(len(u)) * h]
    )
    assert np.allclose(jacobian(x, *u), numeric, rtol=1e-6, atol=1e-9)


def test_a_bound_is_pinned_or_released_as_the_data_want() -> None:
    # b = 0 and E_inf = 0 (a pure power law): both end at their bound.
    x = np.geomspace(1e12, 1e18, 10)
    pure = fit_power_law(x, 5.0 * (x / 1e12) ** -0.2, shift=True, what="compute law")
    assert pure.b < 1e-6 * x.min() and pure.e_inf < 1e-12
    assert pure.alpha == pytest.approx(0.2, rel=1e-8)
    # From a start pinned at b = 0 and E_inf = 0, a law with b, E_inf > 0 is still found.
    y = law(x, 2e3, 3e13, 0.3, 0.1)
    fit = fit_power_law(
        x, y, shift=True, what="compute law", x_ref=1e15, start=(1.0, 0.0, 0.3, 0.0)
    )
    assert fit.b == pytest.approx(3e13, rel=1e-4)
    assert fit.e_inf == pytest.approx(0.1, rel=1e-6)


def test_warm_start_from_the_optimum_stays_there() -> None:
    c = np.geomspace(1e12, 1e18, 15)
    y = noisy(law(c, 300.0, 1e13, 0.25, 0.1), 0.01)
    cold = fit_power_law(c, y, shift=True, what="compute law")
    warm = fit_power_law(c, y, shift=True, what="compute law", x_ref=cold.x_ref, start=cold.scaled)
    assert warm.alpha == pytest.approx(cold.alpha, rel=1e-6)
    assert warm.e_inf == pytest.approx(cold.e_inf, rel=1e-6)


def test_no_convergence_is_an_error() -> None:
    # Pure noise around a constant: no power law fits, and no start converges.
    c = np.geomspace(1e12, 1e18, 10)
    with pytest.raises(FitError) as info:
        fit_power_law(c, noisy(np.full(10, 0.2), 0.01), shift=True, what="compute law")
    assert str(info.value) == (
        "the compute law did not converge from any of 18 starts on 10 points (errors that "
        "hardly change with x do this); check the points with `scalelab fit --json` or add runs "
        "that extend the range"
    )


def test_a_fit_that_returns_its_start_is_not_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # curve_fit on raw FLOPs near 1e18 "converges" at its start (the gradient there is ~0).
    monkeypatch.setattr(fitting, "_curve_fit", lambda x, log_y, p0, *rest: (p0, 0 * x))
    c = np.geomspace(1e12, 1e18, 6)
    with pytest.raises(FitError, match="did not converge from any of 18 starts on 6 points"):
        fit_power_law(c, law(c, 300.0, 0.0, 0.25, 0.1), shift=True, what="compute law")


def test_holdout_error_is_small_for_a_law_and_needs_enough_points() -> None:
    c = np.geomspace(1e12, 1e20, 20)
    y = noisy(law(c, 2e4, 3e13, 0.3, 0.12), 0.002)
    assert holdout_log_rmse(c, y, shift=True, what="compute law") < 0.01
    with pytest.raises(FitError) as info:
        holdout_log_rmse(c[:5], y[:5], shift=True, what="compute law")
    assert str(info.value) == (
        "the compute law hold-out needs 5 points below the 80% quantile of compute and at least "
        "one above; found 4 below and 1 above"
    )


def test_log_linear_fit_recovers_an_allocation_power_law() -> None:
    c = np.geomspace(1e15, 1e21, 10)
    k, m = fit_log_linear(c, 3e-4 * c**0.35)
    assert m == pytest.approx(0.35, rel=1e-10)
    assert k == pytest.approx(3e-4, rel=1e-8)


def test_extrapolation_on_published_learning_curves() -> None:
    """Alabdulmohsin et al. 2022's NMT learning curves: fit each model's training rows, predict
    its held-out (largest) point. Eq. 5 must extrapolate well and at least as well as
    a x^-alpha + E_inf, the law without the shift b."""
    path = EXTERNAL / "rnsl_benchmark_nmt_subset.csv"
    df = pd.read_csv(path)
    errors = {True: [], False: []}
    for _, curve in df.groupby("Model"):
        train, test = curve[curve["Training"] == 1], curve[curve["Training"] == 0]
        for shift in (True, False):
            fit = fit_power_law(
                train["Seen Examples"].to_numpy(), train["Loss"].to_numpy(), shift=shift, what="x"
            )
            errors[shift] += list(
                np.log(fit.predict(test["Seen Examples"].to_numpy())) - np.log(test["Loss"])
            )
    rms = {shift: float(np.sqrt(np.mean(np.square(e)))) for shift, e in errors.items()}
    assert len(errors[True]) == 5
    assert rms[True] < 0.035  # 2.8% here
    assert rms[True] <= rms[False]
