"""Linear probes on feature tensors: ridge algebra, statistics, the three methods, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalelab.errors import ProbeError
from scalelab.probe import ProbeResult, resolve_settings, run_probe
from scalelab.probe.linear import Standardiser, holdout_split
from scalelab.probe.ridge import DEFAULT_PENALTIES, Moments, RidgeSpectrum

FAST_LION = {"epochs": 40, "batch_size": 100, "lr": 3e-3, "augment": False}


def gaussian_classes(n: int, dim: int, classes: int, separation: float, seed: int):
    """Features = class mean + unit noise, shifted and scaled per feature like raw pre-logits."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=g) * separation
    y = torch.arange(n) % classes
    x = means[y] + torch.randn(n, dim, generator=g)
    return x * torch.linspace(0.5, 4.0, dim) + 3.0, y


def train_test(n_train: int, n_test: int, dim: int, classes: int, separation: float, seed: int):
    """Train and test splits drawn around the same class means."""
    x, y = gaussian_classes(n_train + n_test, dim, classes, separation, seed)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def centred(x: np.ndarray, labels: np.ndarray, classes: int):
    onehot = np.eye(classes)[labels]
    return x - x.mean(axis=0), onehot - onehot.mean(axis=0)


def lstsq_ridge(xc: np.ndarray, yc: np.ndarray, penalty: float) -> np.ndarray:
    """min (1/n)||XW − Y||² + λ||W||² as ordinary least squares on [X; √(nλ)·I], [Y; 0]."""
    n, dim = xc.shape
    a = np.vstack([xc, math.sqrt(n * penalty) * np.eye(dim)])
    b = np.vstack([yc, np.zeros((dim, yc.shape[1]))])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def spectra(x: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, RidgeSpectrum]:
    xt = torch.from_numpy(x)
    return {
        "primal": RidgeSpectrum.from_moments(Moments.of(xt, torch.from_numpy(labels), classes)),
        "dual": RidgeSpectrum.from_rows(xt, torch.from_numpy(np.eye(classes)[labels])),
    }


# ── the ridge algebra ───────────────────────────────────────────────────────────────────


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 40),
    dim=st.integers(1, 30),
    classes=st.integers(2, 6),
    log_penalty=st.floats(-4, 2),
    seed=st.integers(0, 2**16),
)
def test_ridge_equals_numpy_lstsq_on_the_augmented_system(n, dim, classes, log_penalty, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * rng.uniform(0.1, 3.0, size=dim)
    labels = rng.integers(0, classes, size=n)
    penalty = 10.0**log_penalty
    expected = lstsq_ridge(*centred(x, labels, classes), penalty)
    for form, spectrum in spectra(x, labels, classes).items():
        got = spectrum.weights(penalty).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9, err_msg=form)


@pytest.mark.parametrize("n,dim", [(300, 20), (25, 60)])
def test_eigendecomposition_equals_a_direct_solve_for_every_penalty_of_the_grid(n, dim):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim))  # correlated features
    labels = rng.integers(0, 5, size=n)
    xc, yc = centred(x, labels, 5)
    forms = spectra(x, labels, 5)
    for penalty in DEFAULT_PENALTIES:
        direct = np.linalg.solve(xc.T @ xc + n * penalty * np.eye(dim), xc.T @ yc)
        for form, spectrum in forms.items():
            got = spectrum.weights(penalty).numpy()
            scale = np.abs(direct).max()
            np.testing.assert_allclose(got, direct, rtol=1e-6, atol=1e-7 * scale, err_msg=form)


def test_spectrum_logits_include_the_intercept():
    rng = np.random.default_rng(2)
    x, labels = rng.normal(size=(50, 4)), rng.integers(0, 3, size=50)
    spectrum = spectra(x, labels, 3)["primal"]
    xt = torch.from_numpy(x)
    direct = (xt - spectrum.x_mean) @ spectrum.weights(0.1) + spectrum.y_mean
    torch.testing.assert_close(spectrum.logits(spectrum.project(xt), 0.1), direct)


@pytest.mark.parametrize("n,dim", [(200, 12), (30, 50)])  # primal and dual refit
def test_ridge_probe_refit_is_least_squares_on_the_standardised_training_split(n, dim):
    x, y, test_x, test_y = train_test(n, 100, dim, 4, separation=0.5, seed=3)
    result = run_probe(x, y, test_x, test_y, 4, settings={"penalties": [0.05]})
    z = Standardiser.fit(x).apply(x, torch.float64).numpy()
    xc, yc = centred(z, y.numpy(), 4)
    weight = lstsq_ridge(xc, yc, 0.05)
    bias = np.eye(4)[y.numpy()].mean(axis=0) - z.mean(axis=0) @ weight
    z_test = Standardiser.fit(x).apply(test_x, torch.float64).numpy()
    expected = np.mean((z_test @ weight + bias).argmax(axis=1) != test_y.numpy())
    assert result.error == pytest.approx(expected, abs=1e-12)
    assert result.details["penalty"] == 0.05
    assert result.details["solver"] == ("primal" if n * 0.9 >= dim else "dual")


# ── statistics ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("method", ["ridge", "logreg", "lion"])
def test_separable_features_give_error_zero(method):
    x, y, test_x, test_y = train_test(300, 300, 16, 5, separation=8.0, seed=5)
    settings_ = FAST_LION if method == "lion" else None
    assert run_probe(x, y, test_x, test_y, 5, method, settings=settings_).error == 0.0


def test_random_labels_give_chance_error_within_four_sigma():
    g = torch.Generator().manual_seed(6)
    classes, n_test = 10, 4000
    x, y = torch.randn(2000, 32, generator=g), torch.randint(0, classes, (2000,), generator=g)
    test_x = torch.randn(n_test, 32, generator=g)
    test_y = torch.randint(0, classes, (n_test,), generator=g)
    error = run_probe(x, y, test_x, test_y, classes).error
    chance = 1 - 1 / classes
    sigma = math.sqrt(chance * (1 - chance) / n_test)  # binomial: labels independent of x
    assert abs(error - chance) < 4 * sigma


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), separation=st.floats(0.1, 1.5), n=st.integers(40, 300))
def test_lambda_selection_never_loses_to_the_worst_lambda_on_validation(seed, separation, n):
    x, y = gaussian_classes(n, 10, 3, separation, seed)
    penalties = [1e-4, 1e-2, 1.0, 100.0]
    details = run_probe(x, y, x, y, 3, settings={"penalties": penalties}, seed=seed).details
    errors = details["validation_errors"]
    chosen = penalties.index(details["penalty"])
    assert errors[chosen] == min(errors) <= max(errors)
    # The recorded validation errors are those of direct solves fitted on the other rows.
    fit_rows, held_rows = holdout_split(n, 0.1, seed)
    z = Standardiser.fit(x).apply(x, torch.float64).numpy()
    xc, yc = centred(z[fit_rows], y.numpy()[fit_rows], 3)
    x_mean, y_mean = z[fit_rows].mean(axis=0), np.eye(3)[y.numpy()[fit_rows]].mean(axis=0)
    for penalty, recorded in zip(penalties, errors, strict=True):
        w = np.linalg.solve(xc.T @ xc + len(fit_rows) * penalty * np.eye(10), xc.T @ yc)
        logits = (z[held_rows] - x_mean) @ w + y_mean
        assert recorded == pytest.approx(np.mean(logits.argmax(1) != y.numpy()[held_rows]))


def test_ridge_error_does_not_depend_on_the_scale_of_each_feature():
    x, y, test_x, test_y = train_test(300, 300, 8, 3, separation=0.7, seed=7)
    scale, shift = torch.logspace(-3, 3, 8), torch.linspace(-100, 100, 8)
    plain = run_probe(x, y, test_x, test_y, 3)
    rescaled = run_probe(x * scale + shift, y, test_x * scale + shift, test_y, 3)
    assert rescaled.error == plain.error
    assert rescaled.details["penalty"] == plain.details["penalty"]


def test_standardiser_merges_chunks_exactly():
    rng = np.random.default_rng(18)
    x = rng.normal(loc=1e4, scale=0.5, size=(40_000, 3)).astype(np.float32)  # 3 chunks
    x[:, 2] = 5.0
    standardiser = Standardiser.fit(torch.from_numpy(x))
    np.testing.assert_allclose(standardiser.mean.numpy(), x.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(
        standardiser.scale.numpy(), [*x[:, :2].astype(np.float64).std(0), 1.0], rtol=1e-4
    )


def test_constant_features_are_ignored_not_nan():
    x, y = gaussian_classes(200, 6, 3, separation=3.0, seed=9)
    x[:, 2] = 7.0
    assert run_probe(x, y, x, y, 3).error < 0.05


# ── the three methods ───────────────────────────────────────────────────────────────────


def test_all_three_methods_agree_on_an_easy_problem():
    x, y, test_x, test_y = train_test(800, 2000, 20, 4, separation=0.9, seed=10)
    errors = {
        method: run_probe(x, y, test_x, test_y, 4, method, settings=s).error
        for method, s in [("ridge", None), ("logreg", {"l2": 1e-3}), ("lion", FAST_LION)]
    }
    assert max(errors.values()) < 0.05, errors
    assert max(errors.values()) - min(errors.values()) < 0.02, errors


def test_the_lion_probe_records_the_authors_settings_and_sees_raw_features():
    x, y = gaussian_classes(200, 16, 4, separation=0.8, seed=12)
    settings_ = {"epochs": 1, "batch_size": 64, "augment": False}
    result = run_probe(x, y, x, y, 4, "lion", settings=settings_)
    assert result.details | {"lr": 1e-5, "label_smoothing": 0.3, "clip": 1.0} == result.details
    assert result.details["standardised"] is False  # raw pre-logits, as the authors


def test_logreg_chooses_its_penalty_on_a_held_out_split_when_given_several():
    x, y = gaussian_classes(300, 10, 3, separation=0.6, seed=13)
    details = run_probe(x, y, x, y, 3, "logreg", settings={"l2": [1e-4, 10.0]}).details
    assert len(details["validation_errors"]) == 2
    assert details["l2_chosen"] in (1e-4, 10.0)
    assert details["validation_errors"][[1e-4, 10.0].index(details["l2_chosen"])] == min(
        details["validation_errors"]
    )


@pytest.mark.parametrize(
    "method,s",
    [
        ("ridge", None),
        ("logreg", {"l2": [1e-2, 1e-3]}),
        ("lion", {"epochs": 2, "lr": 1e-3, "batch_size": 64, "augment": False}),
    ],
)
def test_a_seed_makes_a_probe_deterministic(method, s):
    x, y = gaussian_classes(400, 12, 4, separation=0.4, seed=14)
    first = run_probe(x, y, x, y, 4, method, settings=s, seed=3)
    again = run_probe(x, y, x, y, 4, method, settings=s, seed=3)
    assert (first.error, first.details) == (again.error, again.details)


def test_the_ridge_seed_chooses_the_held_out_rows():
    assert not torch.equal(holdout_split(100, 0.1, 0)[1], holdout_split(100, 0.1, 1)[1])
    fit, held = holdout_split(100, 0.1, 0)
    assert len(held) == 10 and sorted(torch.cat([fit, held]).tolist()) == list(range(100))


def test_result_records_method_settings_and_wall_time():
    x, y = gaussian_classes(100, 5, 2, separation=1.0, seed=15)
    result = run_probe(x.numpy(), y.numpy(), x.numpy(), y.numpy(), 2)
    assert isinstance(result, ProbeResult) and result.method == "ridge"
    assert 0 <= result.error <= 1 and result.wall_seconds > 0
    assert result.details["penalties"] == list(DEFAULT_PENALTIES)
    assert result.details["holdout"] == 0.1
    assert result.details["train_examples"] == 100 and result.details["feature_dim"] == 5


def test_resolve_settings_fills_defaults_and_keeps_overrides():
    # The authors' finetune.py --mode linear: LION lr 1e-5 for 50 epochs (paper A.3), the rest
    # get_finetune_parser's defaults (batch 4096, smoothing 0.3, clip 1.0, augment, no decay).
    assert resolve_settings("lion", {"epochs": 7}) == {
        "lr": 1e-5,
        "weight_decay": 0.0,
        "epochs": 7,
        "batch_size": 4096,
        "label_smoothing": 0.3,
        "clip": 1.0,
        "augment": True,
    }


# ── bad input ───────────────────────────────────────────────────────────────────────────


def probe_error(*args, **kwargs) -> str:
    with pytest.raises(ProbeError) as info:
        run_probe(*args, **kwargs)
    return str(info.value)


@pytest.fixture
def easy():
    return gaussian_classes(40, 4, 2, separation=2.0, seed=16)


def test_unknown_method_suggests_the_closest(easy):
    x, y = easy
    assert probe_error(x, y, x, y, 2, "rigde") == (
        "unknown probe method 'rigde'; did you mean 'ridge'? (methods: lion, logreg, ridge)"
    )
    assert probe_error(x, y, x, y, 2, "svm") == (
        "unknown probe method 'svm'; (methods: lion, logreg, ridge)"
    )


def test_unknown_or_invalid_settings(easy):
    x, y = easy
    assert probe_error(x, y, x, y, 2, settings={"lambda": 1}) == (
        "unknown setting 'lambda' for probe method 'ridge'; settings: holdout, penalties"
    )
    assert probe_error(x, y, x, y, 2, "lion", settings={"epochs": 0}) == (
        "probe setting epochs=0 for method 'lion' must be an integer > 0"
    )
    assert probe_error(x, y, x, y, 2, settings={"penalties": [1.0, -1.0]}) == (
        "probe setting penalties=[1.0, -1.0] for method 'ridge' must be a list of numbers > 0"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features(easy, bad):
    x, y = easy
    x = x.clone()
    x[3, 1] = bad
    x[5, 0] = bad
    assert probe_error(x, y, torch.zeros(10, 4), y[:10], 2) == (
        "train features contain NaN or inf in 2 of 40 rows; the encoder's output is not "
        "finite, probe a checkpoint that did not diverge"
    )
    message = probe_error(torch.zeros_like(x), y, x, y, 2)
    assert message.startswith("test features contain NaN or inf in 2 of 40 rows")


def test_a_training_split_with_one_class(easy):
    x, y = easy
    assert probe_error(x, torch.ones_like(y), x, y, 2) == (
        "the training split has only one class (1); a probe needs at least two classes, "
        "use a larger or stratified training split"
    )


def test_mismatched_shapes(easy):
    x, y = easy
    assert probe_error(x, y[:-1], x, y, 2) == (
        "train labels have shape (39,) but train features have 40 rows; "
        "pass one label per feature row"
    )
    assert probe_error(x, y, x[:, :3], y, 2) == (
        "test features have 3 columns but train features have 4; "
        "extract both splits with the same encoder"
    )
    assert probe_error(x[0], y, x, y, 2) == (
        "train features must be a 2-D (examples, features) tensor, got shape (4,)"
    )
    assert probe_error(x, y, x[:0], y[:0], 2) == (
        "the test split is empty; a probe needs examples in both splits"
    )
    assert probe_error(x, y + 1, x, y, 2) == (
        "train labels must lie in [0, 2), found 1..2; pass the target's num_classes"
    )


def test_a_numerically_singular_ridge_system():
    x = torch.randn(500, 20, generator=torch.Generator().manual_seed(17))
    x[:, 10:] = x[:, :10]  # duplicated features: XᵀX has rank 10
    y = torch.arange(500) % 2
    assert probe_error(x, y, x, y, 2, settings={"penalties": [1e-30]}) == (
        "the ridge system is numerically singular at penalty 1e-30; choose from larger penalties"
    )
