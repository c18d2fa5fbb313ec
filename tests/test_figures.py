"""Figures render headless and show what the data and the fit say.

Each test draws from a DataFrame in the `scalelab.load_runs` layout and a fit dict in the
`scalelab.analysis.fit_scaling` layout, then inspects the Axes: series, points per series, log
scales, axis labels with units, and the exponents in the legends.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.axes import Axes
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.analysis import fit_scaling
from scalelab.analysis.synthetic import synthetic_runs
from scalelab.analysis.table import RIDGE_CAVEAT
from scalelab.cli import app
from scalelab.errors import PlotError
from scalelab.figures import batch_size_figure, fig1, fig6, fig7, fig8, save_figure
from scalelab.figures.curves import compute_law_band, parametric_optimum
from scalelab.figures.render import plot_figures
from scalelab.figures.style import legend_inside, unknown_figure

runner = CliRunner()
CHINCHILLA = Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extraction.csv"
MODELS = {
    "B-6/Wi-256": 9_000_000,
    "B-6/Wi-512": 24_660_000,
    "B-12/Wi-512": 37_260_000,
    "B-12/Wi-1024": 124_840_000,
}
EXAMPLES = (100_000, 1_000_000, 3_000_000, 10_000_000)
EPOCHS = (50.0, 100.0, 200.0, 400.0)


def error_law(params: float, examples: float, epochs: float) -> float:
    """A smooth error surface: more P, N and T always help, with diminishing returns."""
    return 0.03 + 4.0 * params**-0.3 + 6.0 * examples**-0.35 + 2.0 * (examples * epochs) ** -0.2


def make_runs(target: str = "cifar10", method: str = "ridge", scale: float = 1.0) -> pd.DataFrame:
    records = []
    for (model, params), examples, epochs in (
        (m, n, t) for m in MODELS.items() for n in EXAMPLES for t in EPOCHS
    ):
        records.append(
            {
                "checkpoint_id": len(records) + 1,
                # One run per (model, N): a distinct id for each, the same on every run of
                # the suite (hash() of a str is salted per process and can collide mod 10,000).
                "job_id": list(MODELS).index(model) * len(EXAMPLES) + EXAMPLES.index(examples),
                "sweep": "test",
                "source": "grid",
                "status": "done",
                "model": model,
                "params": params,
                "flops": float(params),
                "flop_convention": "mac",
                "examples": examples,
                "seed": 0,
                "epochs": epochs,
                "compute": float(params) * 3 * examples * epochs,
                "target": target,
                "method": method,
                "error": scale * error_law(params, examples, epochs),
                "upstream_error": None,
                "train_loss": None,
                "wall_seconds": 1.0,
                "batch_size": 16384.0,
                "lr": 1e-5,
            }
        )
    return pd.DataFrame.from_records(records)


FIT = {
    "target": "cifar10",
    "n_points": 36,
    "frontier": [],
    "compute_law": {
        "a": 25.0,
        "b": 0.0,
        "alpha": 0.1234,
        "e_inf": 0.05,
        "alpha_ci": [0.101, 0.146],
        "r2": 0.98,
        "holdout_log_rmse": 0.03,
    },
    "params_law": {"a": 4.0, "alpha": 0.98, "e_inf": 0.1, "alpha_ci": [0.9, 1.07]},
    "examples_law": {"a": 6.0, "alpha": 0.352, "e_inf": 0.05, "alpha_ci": [0.31, 0.4]},
    "allocation": {
        "epochs": 50.0,
        "params_exponent": 0.35,
        "params_exponent_ci": [0.3, 0.41],
        "examples_exponent": 0.65,
        "examples_exponent_ci": [0.59, 0.7],
        "params_coefficient": 2.0,
        "examples_coefficient": 0.01,
    },
    "parametric": {
        "E": 0.03,
        "A": 4.0,
        "B": 6.0,
        "alpha": 0.3,
        "beta": 0.35,
        "params_exponent": 0.35 / 0.65,
        "examples_exponent": 0.3 / 0.65,
    },
    "notes": [],
    # (a, b, α, E∞) of each bootstrap resample, as fit_scaling keeps them: the band's source.
    "bootstrap": {"resamples": 5, "seed": 0, "unit": "run", "succeeded": {"compute_law": 5}},
    "bootstrap_samples": {
        "compute_law": [[25.0 * k, 0.0, 0.1234, 0.05] for k in (0.8, 0.9, 1.0, 1.1, 1.2)]
    },
}


@pytest.fixture(scope="module")
def real_fit() -> dict:
    return fit_scaling(make_runs(), "cifar10", bootstrap=20)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def by_gid(ax: Axes, gid: str) -> list:
    return [line for line in ax.lines if line.get_gid() == gid]


def legend_texts(ax: Axes) -> list[str]:
    return [t.get_text().replace("\n", " ") for t in ax.get_legend().get_texts()]


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# ── fig1 ────────────────────────────────────────────────────────────────────────────────


def test_fig1_draws_one_line_per_run_across_epochs_on_log_axes():
    runs = make_runs()
    ax = fig1(runs, FIT, "cifar10").axes[0]
    lines = by_gid(ax, "run")
    assert len(lines) == len(MODELS) * len(EXAMPLES)
    assert all(len(line.get_xdata()) == len(EPOCHS) for line in lines)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "compute C (PFLOPs)"
    assert ax.get_ylabel() == "CIFAR-10 test error (%)"
    # Units: PFLOPs on x and percent on y, checked against the smallest run.
    smallest = runs.loc[runs["compute"].idxmin()]
    xs = np.concatenate([line.get_xdata() for line in lines])
    ys = np.concatenate([line.get_ydata() for line in lines])
    assert xs.min() == pytest.approx(smallest["compute"] / 1e15)
    assert ys[np.argmin(xs)] == pytest.approx(100 * smallest["error"])


def test_fig1_colour_follows_model_size_and_marker_size_follows_examples():
    ax = fig1(make_runs(), FIT, "cifar10").axes[0]
    lines = by_gid(ax, "run")
    # Lines are drawn from the smallest model to the largest: blue to red.
    redness = [line.get_color()[0] - line.get_color()[2] for line in lines]
    assert redness[0] < 0 < redness[-1]
    assert redness == sorted(redness)
    sizes = sorted({line.get_markersize() for line in lines})
    assert len(sizes) == len(EXAMPLES)
    assert legend_texts(ax)[-4:] == ["N = 100k", "N = 1M", "N = 3M", "N = 10M"]


def test_fig1_legend_states_the_fitted_alpha_and_its_interval():
    ax = fig1(make_runs(), FIT, "cifar10").axes[0]
    (fit_line,) = by_gid(ax, "fit")
    assert fit_line.get_linestyle() == "--"
    assert "fit: α = 0.12 [0.10, 0.15]" in legend_texts(ax)
    # The dashed line is the stored law, in the axes' units.
    c = np.asarray(fit_line.get_xdata()) * 1e15
    law = FIT["compute_law"]
    expected = 100 * (law["a"] * (law["b"] + c) ** -law["alpha"] + law["e_inf"])
    np.testing.assert_allclose(fit_line.get_ydata(), expected, rtol=1e-9)
    assert [c.get_gid() for c in ax.collections] == ["band"]
    assert "95% bootstrap band" in legend_texts(ax)
    # Too few resamples fitted (or none asked for): no band, and the legend says why.
    few = {**FIT, "bootstrap": {"resamples": 100, "succeeded": {"compute_law": 5}}}
    ax = fig1(make_runs(), few, "cifar10").axes[0]
    assert len(ax.collections) == 0
    assert "no bootstrap band: only 5 of 100 resamples could be fitted" in legend_texts(ax)
    none = {**FIT, "bootstrap": {"resamples": 0}, "bootstrap_samples": {"compute_law": []}}
    ax = fig1(make_runs(), none, "cifar10").axes[0]
    assert "no bootstrap band: the fit has no resamples (--bootstrap 0)" in legend_texts(ax)


def test_the_band_is_the_pointwise_percentile_interval_of_the_resampled_laws():
    compute = np.geomspace(1e12, 1e20, 7)
    lower, upper = compute_law_band(FIT, compute)
    law = FIT["compute_law"]
    reducible = law["a"] * compute ** -law["alpha"]
    # Five resamples with a scaled by 0.8 ... 1.2: percentiles 2.5 and 97.5 lie at 0.81 and 1.19.
    np.testing.assert_allclose(lower, 0.81 * reducible + law["e_inf"])
    np.testing.assert_allclose(upper, 1.19 * reducible + law["e_inf"])
    # Fewer than half of the resamples fitted: no band, as `scalelab plan` gives no interval.
    assert compute_law_band({**FIT, "bootstrap": {"resamples": 11}}, compute) is None
    assert compute_law_band({**FIT, "bootstrap_samples": {}}, compute) is None


def test_fig1_without_a_fit_draws_the_points_and_says_the_fit_is_missing():
    fit = {**FIT, "compute_law": None, "notes": ["compute_law: 3 frontier points; need 5"]}
    ax = fig1(make_runs(), fit, "cifar10").axes[0]
    assert len(by_gid(ax, "run")) == len(MODELS) * len(EXAMPLES)
    assert by_gid(ax, "fit") == []
    assert "no compute-law fit: 3 frontier points; need 5" in legend_texts(ax)
    ax = fig1(make_runs(), None, "cifar10").axes[0]
    assert "no compute-law fit (no fit result was given)" in legend_texts(ax)
    failed = {"notes": ["3 points for target 'cifar10'; a fit needs at least 5"]}  # FitError
    ax = fig1(make_runs(), failed, "cifar10").axes[0]
    assert (
        "no compute-law fit: 3 points for target 'cifar10'; a fit needs at least 5"
        in legend_texts(ax)
    )


def test_fig1_shows_losses_unscaled():
    ax = fig1(make_runs(target="loss-target", scale=20.0), None, "loss-target").axes[0]
    assert ax.get_ylabel() == "loss-target loss"
    assert max(max(line.get_ydata()) for line in by_gid(ax, "run")) > 1.0


def test_fig1_leaves_out_diverged_runs_and_random_init_baselines():
    runs = make_runs()
    runs.loc[runs["model"] == "B-6/Wi-256", "status"] = "diverged"
    baseline = runs.iloc[[0]].assign(compute=0.0, epochs=0.0, status="done")
    ax = fig1(pd.concat([runs, baseline]), FIT, "cifar10").axes[0]
    assert len(by_gid(ax, "run")) == (len(MODELS) - 1) * len(EXAMPLES)


def test_no_data_for_the_target_lists_the_targets_that_have_data():
    runs = pd.concat([make_runs(), make_runs(target="upstream", method="upstream")])
    with pytest.raises(PlotError) as err:
        fig1(runs, FIT, "cifar100")
    assert str(err.value) == (
        "no points for target 'cifar100'; targets with points: cifar10, upstream"
    )
    with pytest.raises(PlotError) as err:
        fig1(runs.iloc[:0], FIT, "cifar10")
    assert str(err.value) == (
        "no points for target 'cifar10': the database has no evaluated checkpoints; "
        "run `scalelab run-worker` or `scalelab import FILE` first"
    )


def test_several_probe_methods_must_be_told_apart():
    runs = pd.concat([make_runs(), make_runs(method="lion", scale=0.9)])
    with pytest.raises(PlotError) as err:
        fig1(runs, FIT, "cifar10")
    assert str(err.value) == (
        "target 'cifar10' has points from 2 methods (lion, ridge); choose one with --method"
    )
    ax = fig1(runs, FIT, "cifar10", method="lion").axes[0]
    assert len(by_gid(ax, "run")) == len(MODELS) * len(EXAMPLES)
    with pytest.raises(PlotError) as err:
        fig1(runs, FIT, "cifar10", method="sgd")
    assert str(err.value) == (
        "no points for target 'cifar10' with method 'sgd'; methods with points: lion, ridge"
    )


def test_unknown_figure_name_suggests_the_closest():
    assert str(unknown_figure("figure1")) == (
        "unknown figure 'figure1'; did you mean 'fig1'? "
        "(choose from fig1, fig6, fig7, fig8, batch-size, all)"
    )
    assert str(unknown_figure("batchsize")).startswith(
        "unknown figure 'batchsize'; did you mean 'batch-size'?"
    )
    assert str(unknown_figure("zzz")) == (
        "unknown figure 'zzz'; (choose from fig1, fig6, fig7, fig8, batch-size, all)"
    )


# ── fig6 ────────────────────────────────────────────────────────────────────────────────


def test_fig6_draws_the_targets_side_by_side_on_one_colour_scale():
    runs = pd.concat([make_runs(), make_runs(target="imagenet1k", scale=2.0)])
    fig = fig6(runs, {"cifar10": FIT, "imagenet1k": None})
    left, right = fig.axes[:2]
    assert [left.get_title(), right.get_title()] == ["CIFAR-10", "ImageNet-1k"]
    assert len(by_gid(left, "run")) == len(by_gid(right, "run")) == len(MODELS) * len(EXAMPLES)
    assert "fit: α = 0.12 [0.10, 0.15]" in legend_texts(left)
    assert "no compute-law fit (no fit result was given)" in legend_texts(right)
    colours = [
        sorted(tuple(line.get_color()) for line in by_gid(ax, "run")) for ax in (left, right)
    ]
    assert colours[0] == colours[1]
    assert len(fig.axes) == 3  # two panels and one shared colour bar


# ── fig7 ────────────────────────────────────────────────────────────────────────────────


def test_fig7_draws_the_bottleneck_points_and_dotted_laws_with_their_exponents():
    runs = make_runs()
    left, right = fig7(runs, FIT, "cifar10").axes
    (p_points,) = by_gid(left, "run")
    (n_points,) = by_gid(right, "run")
    np.testing.assert_array_equal(p_points.get_xdata(), sorted(MODELS.values()))
    np.testing.assert_array_equal(n_points.get_xdata(), EXAMPLES)
    expected = [100 * error_law(p, EXAMPLES[-1], EPOCHS[-1]) for p in sorted(MODELS.values())]
    np.testing.assert_allclose(p_points.get_ydata(), expected)
    for ax in (left, right):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        (fit_line,) = by_gid(ax, "fit")
        assert fit_line.get_linestyle() == ":"
    assert left.get_xlabel() == "parameters P"
    assert right.get_xlabel() == "pretraining examples N"
    assert left.get_ylabel() == "CIFAR-10 test error (%)"
    assert "fit: α_P = 0.98 [0.90, 1.07]" in legend_texts(left)
    assert "fit: α_N = 0.35 [0.31, 0.40]" in legend_texts(right)
    assert left.get_title() == "P-bottlenecked (N = 10M, T = 400)"
    assert right.get_title() == "N-bottlenecked (B-12/Wi-1024, T = 400)"


def test_fig7_with_one_law_missing_keeps_the_other():
    fit = {**FIT, "examples_law": None, "notes": ["examples_law: only 2 values of N"]}
    left, right = fig7(make_runs(), fit, "cifar10").axes
    assert len(by_gid(left, "fit")) == 1
    assert by_gid(right, "fit") == []
    assert "no E(N) fit: only 2 values of N" in legend_texts(right)


# ── fig8 ────────────────────────────────────────────────────────────────────────────────


def test_fig8_draws_the_frontier_allocation_with_its_power_laws():
    runs = make_runs()
    left, right = fig8(runs, FIT, "cifar10").axes
    at_t = runs.loc[runs["epochs"] == 50.0].sort_values("compute")
    for ax, column, key in (
        (left, "params", "params_exponent"),
        (right, "examples", "examples_exponent"),
    ):
        (points,) = by_gid(ax, "run")
        compute = np.asarray(points.get_xdata()) * 1e15
        nearest = [int(np.argmin(abs(at_t["compute"].to_numpy() - c))) for c in compute]
        frontier = at_t.iloc[nearest]
        np.testing.assert_allclose(frontier["compute"], compute)
        # Every drawn point is on the frontier: nothing at T = 50 beats it with less compute.
        for c, e in zip(compute, frontier["error"], strict=True):
            assert not ((at_t["compute"] <= c) & (at_t["error"] < e)).any()
        np.testing.assert_array_equal(points.get_ydata(), frontier[column])
        (fit_line,) = by_gid(ax, "fit")
        allocation = FIT["allocation"]
        c = np.asarray(fit_line.get_xdata()) * 1e15
        np.testing.assert_allclose(
            fit_line.get_ydata(), allocation[f"{column}_coefficient"] * c ** allocation[key]
        )
        (parametric,) = by_gid(ax, "parametric")
        slope = loglog_slope(parametric.get_xdata(), parametric.get_ydata())
        assert slope == pytest.approx(FIT["parametric"][key])
        assert ax.get_xlabel() == "compute C (PFLOPs)"
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "fit: P* ∝ $C^{0.35}$ [0.30, 0.41]" in legend_texts(left)
    assert "fit: N* ∝ $C^{0.65}$ [0.59, 0.70]" in legend_texts(right)
    assert left.get_title() == "T = 50"


def test_fig8_parametric_prediction_meets_the_compute_budget():
    left, right = fig8(make_runs(), FIT, "cifar10").axes
    (p_line,) = by_gid(left, "parametric")
    (n_line,) = by_gid(right, "parametric")
    # C = FLOP(f)·3·N·T with FLOP(f) = P in this data, T = 50.
    compute = np.asarray(p_line.get_xdata()) * 1e15
    np.testing.assert_allclose(p_line.get_ydata() * n_line.get_ydata() * 3 * 50, compute)


def test_fig8_without_allocation_uses_the_smallest_epochs_and_says_so():
    fit = {**FIT, "allocation": None, "parametric": None, "notes": ["allocation: one model"]}
    left, right = fig8(make_runs(), fit, "cifar10").axes
    assert left.get_title() == "T = 50"
    assert by_gid(left, "fit") == [] and by_gid(left, "parametric") == []
    assert "no P*(C) fit: one model" in legend_texts(left)
    assert "no N*(C) fit: one model" in legend_texts(right)


def test_legends_state_the_exponents_of_a_real_fit(real_fit):
    """fit_scaling on the test sweep: every exponent in a legend is the fit's, rounded."""
    runs = make_runs()

    def shown(law: dict, key: str = "alpha") -> str:
        if law[f"{key}_ci"] is None:  # too few resamples could be fitted: no interval
            return f"{law[key]:.2f}"
        low, high = law[f"{key}_ci"]
        return f"{law[key]:.2f} [{low:.2f}, {high:.2f}]"

    (ax,) = [a for a in fig1(runs, real_fit, "cifar10").axes if a.get_legend()]
    assert f"fit: α = {shown(real_fit['compute_law'])}" in legend_texts(ax)
    left, right = fig7(runs, real_fit, "cifar10").axes
    assert f"fit: α_P = {shown(real_fit['params_law'])}" in legend_texts(left)
    assert f"fit: α_N = {shown(real_fit['examples_law'])}" in legend_texts(right)
    assert real_fit["allocation"] is None  # P* lies below this sweep's smallest model
    assert "no P*(C) fit: " in " ".join(legend_texts(fig8(runs, real_fit, "cifar10").axes[0]))


def test_fig8_draws_approach_1s_minima_and_its_law_over_their_range():
    """A grid whose P* lies between its sizes: the minima Approach 1 located are drawn, the
    legend states the fit's exponent and the dashed line spans the minima, not the frontier."""
    runs = synthetic_runs(
        params=tuple(np.geomspace(1e5, 1e7, 5)),
        examples=tuple(np.geomspace(3e4, 1e7, 5)),
        epochs=(50,),
        seeds=(0, 1),
        target="cifar10",
    )
    fit = fit_scaling(runs, "cifar10", bootstrap=20)
    allocation = fit["allocation"]
    left, _ = fig8(runs, fit, "cifar10").axes
    low, high = allocation["params_exponent_ci"]
    value = f"{allocation['params_exponent']:.2f}"
    assert f"fit: P* ∝ $C^{{{value}}}$ [{low:.2f}, {high:.2f}]" in legend_texts(left)
    (line,) = by_gid(left, "fit")
    drawn = np.asarray(line.get_xdata()) * 1e15
    np.testing.assert_allclose([drawn.min(), drawn.max()], allocation["compute_range"])
    (minima,) = by_gid(left, "minima")
    located = np.array(allocation["minima"])
    assert len(located) == allocation["n_budgets"]
    np.testing.assert_allclose(np.asarray(minima.get_xdata()) * 1e15, located[:, 0])
    np.testing.assert_allclose(minima.get_ydata(), located[:, 1])


# ── batch size ──────────────────────────────────────────────────────────────────────────


def batch_runs() -> pd.DataFrame:
    frames = []
    for batch in (1024.0, 4096.0, 16384.0):
        runs = make_runs(target="cifar100")
        runs = runs.loc[runs["model"] == "B-12/Wi-1024"]
        frames.append(runs.assign(batch_size=batch, error=runs["error"] * (1 + 1024 / batch)))
    return pd.concat(frames)


def test_batch_size_draws_one_line_per_epochs_with_a_point_per_batch_size():
    runs = batch_runs()
    runs = runs.loc[runs["examples"] == EXAMPLES[-1]]
    ax = batch_size_figure(runs, "cifar100").axes[0]
    lines = by_gid(ax, "run")
    assert len(lines) == len(EPOCHS)
    assert all(list(line.get_xdata()) == [1024, 4096, 16384] for line in lines)
    # make_runs' probe is ridge: the legend first says it is not the paper's protocol.
    assert legend_texts(ax) == [RIDGE_CAVEAT] + [f"T = {t:g}" for t in EPOCHS]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "pretraining batch size (examples)"
    assert ax.get_ylabel() == "CIFAR-100 test error (%)"
    assert ax.get_title() == "B-12/Wi-1024, N = 10M"


def test_batch_size_draws_every_batch_size_though_a_fit_keeps_one_setting():
    """In a database each batch size is its own hyper-parameter setting, of which a fit keeps
    one per (model, N, T); the batch-size figure still compares them all."""
    runs = batch_runs()
    runs = runs.loc[runs["examples"] == EXAMPLES[-1]]
    runs = runs.assign(
        setting=runs["batch_size"].map(lambda b: f"batch_size={b:g}"),
        checkpoint_id=np.arange(len(runs)),  # a job and checkpoints of its own, as stored
        job_id=runs["job_id"] + 100 * runs["batch_size"].rank(method="dense"),
    )
    ax = batch_size_figure(runs, "cifar100").axes[0]
    assert all(list(line.get_xdata()) == [1024, 4096, 16384] for line in by_gid(ax, "run"))


def test_batch_size_with_several_studies_names_each_line():
    ax = batch_size_figure(batch_runs(), "cifar100").axes[0]
    assert len(by_gid(ax, "run")) == len(EXAMPLES) * len(EPOCHS)
    assert "B-12/Wi-1024, N = 100k, T = 50" in legend_texts(ax)


def test_batch_size_needs_a_sweep_over_batch_sizes():
    with pytest.raises(PlotError) as err:
        batch_size_figure(make_runs(), "cifar10")
    assert str(err.value) == (
        "no batch-size study for target 'cifar10': no (model, N) was trained with two or "
        "more batch sizes; enqueue a grid with several train.batch_size values"
    )


# ── files ───────────────────────────────────────────────────────────────────────────────


def test_save_figure_writes_each_format(tmp_path):
    fig = fig1(make_runs(), FIT, "cifar10")
    paths = save_figure(fig, tmp_path / "plots", "fig1_cifar10", ["png", "pdf"])
    assert [p.name for p in paths] == ["fig1_cifar10.png", "fig1_cifar10.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(PlotError, match=r"^unknown figure format 'jpeg2'; choose from "):
        save_figure(fig, tmp_path, "x", ["png", "jpeg2"])


# ── plot_figures: what `scalelab plot` draws, skips and reports ─────────────────────────


def fixed_fit(fit: dict | None):
    calls = []

    def fit_for(runs, target, method):
        calls.append((target, method))
        return fit

    return fit_for, calls


def test_plot_all_draws_what_the_data_supports_and_says_why_the_rest_was_skipped(tmp_path):
    fit_for, calls = fixed_fit(FIT)
    report = plot_figures(
        "all", make_runs(), fit_for, target="cifar10", out_dir=tmp_path, formats=["png", "svg"]
    )
    assert [p.name for p in report.written] == [
        "fig1_cifar10.png",
        "fig1_cifar10.svg",
        "fig7_cifar10.png",
        "fig7_cifar10.svg",
        "fig8_cifar10.png",
        "fig8_cifar10.svg",
    ]
    assert all(p.stat().st_size > 1000 for p in report.written)
    assert report.skipped == [
        "fig6: no points for target 'imagenet1k'; targets with points: cifar10",
        "batch-size: no batch-size study for target 'cifar10': no (model, N) was trained with "
        "two or more batch sizes; enqueue a grid with several train.batch_size values",
    ]
    assert report.missing_fits == []
    assert calls == [("cifar10", None)]  # one fit per target, shared by the figures


def test_plot_reports_the_fitted_lines_it_could_not_draw(tmp_path):
    fit_for, _ = fixed_fit({"notes": ["compute_law: 2 frontier points; need at least 4"]})
    report = plot_figures("fig1", make_runs(), fit_for, target="cifar10", out_dir=tmp_path)
    assert [p.name for p in report.written] == ["fig1_cifar10.png"]
    assert report.missing_fits == [
        "fig1 (cifar10): no compute-law fit: 2 frontier points; need at least 4"
    ]


def test_plot_of_one_named_figure_fails_where_all_would_skip(tmp_path):
    fit_for, _ = fixed_fit(FIT)
    with pytest.raises(PlotError, match=r"^no points for target 'imagenet1k'; targets with"):
        plot_figures("fig6", make_runs(), fit_for, target=None, out_dir=tmp_path)
    with pytest.raises(PlotError) as err:
        plot_figures("fig1", make_runs(), fit_for, target=None, out_dir=tmp_path)
    assert str(err.value) == "fig1 needs a target; pass --target NAME (targets with data: cifar10)"
    with pytest.raises(PlotError, match=r"^unknown figure 'fig-1'; did you mean 'fig1'\?"):
        plot_figures("fig-1", make_runs(), fit_for, target="cifar10", out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_plot_fig6_takes_any_pair_of_targets(tmp_path):
    runs = pd.concat([make_runs(), make_runs(target="cifar100", scale=1.5)])
    fit_for, calls = fixed_fit(FIT)
    report = plot_figures(
        "fig6", runs, fit_for, target=None, targets=["cifar100", "cifar10"], out_dir=tmp_path
    )
    assert [p.name for p in report.written] == ["fig6_cifar100_cifar10.png"]
    assert calls == [("cifar100", None), ("cifar10", None)]


# ── the curves drawn from stored parameters ─────────────────────────────────────────────


@settings(max_examples=60, deadline=None)
@given(
    alpha=st.floats(0.05, 2.0),
    beta=st.floats(0.05, 2.0),
    big_a=st.floats(1e-2, 1e3),
    big_b=st.floats(1e-2, 1e3),
    log_budget=st.floats(6.0, 20.0),
    nudge=st.floats(-1.0, 1.0).filter(lambda x: abs(x) > 1e-3),
)
def test_parametric_optimum_minimises_the_reducible_error_on_the_budget(
    alpha, beta, big_a, big_b, log_budget, nudge
):
    law = {"A": big_a, "B": big_b, "alpha": alpha, "beta": beta}
    budget = np.array([10.0**log_budget])

    def reducible(params):
        return big_a / params**alpha + big_b / (budget / params) ** beta

    best = parametric_optimum(law, budget)
    assert reducible(best)[0] <= reducible(best * np.exp(nudge))[0] * (1 + 1e-12)


# ── `scalelab plot` on a real database, from imported results ──────────────────────────


def imported_db(tmp_path, runs: pd.DataFrame) -> str:
    """A real SQLite file filled by `scalelab import`, as a user with results from elsewhere."""
    db = str(tmp_path / "runs.db")
    csv = tmp_path / "results.csv"
    columns = ["model", "params", "examples", "epochs", "target", "error", "flops", "seed"]
    runs[columns].to_csv(csv, index=False)
    result = runner.invoke(app, ["import", str(csv), "--db", db])
    assert result.exit_code == 0, result.output
    return db


def test_cli_plot_writes_the_figure_files_from_imported_results(tmp_path):
    db = imported_db(tmp_path, make_runs())
    out = tmp_path / "plots"
    args = ["plot", "fig1", "--target", "cifar10", "--db", db, "--out", str(out)]
    result = runner.invoke(app, [*args, "--format", "png,pdf", "--bootstrap", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written"] == [str(out / "fig1_cifar10.png"), str(out / "fig1_cifar10.pdf")]
    assert (out / "fig1_cifar10.pdf").read_bytes()[:5] == b"%PDF-"


def test_cli_plot_errors_are_one_line(tmp_path):
    db = imported_db(tmp_path, make_runs())
    result = runner.invoke(app, ["plot", "figure1", "--target", "cifar10", "--db", db])
    assert result.exit_code == 2
    assert result.output == (
        "error: unknown figure 'figure1'; did you mean 'fig1'? "
        "(choose from fig1, fig6, fig7, fig8, batch-size, all)\n"
    )
    result = runner.invoke(app, ["plot", "fig1", "--target", "cifar100", "--db", db])
    assert result.exit_code == 2
    assert result.output == (
        "error: no points for target 'cifar100'; targets with points: cifar10\n"
    )


def test_cli_plot_help_shows_an_example():
    result = runner.invoke(app, ["plot", "--help"])
    assert result.exit_code == 0
    assert "Example: scalelab plot fig1 --target synthetic-cifar10" in result.output


def test_cli_plot_draws_published_chinchilla_losses_on_a_loss_axis(tmp_path):
    """245 runs of Hoffmann et al. (2022), imported: losses, not error rates, and C = 6PD."""
    chinchilla = pd.read_csv(CHINCHILLA)
    tokens = chinchilla["Training FLOP"] / (6 * chinchilla["Model Size"])
    runs = pd.DataFrame(
        {
            "model": [f"chinchilla-{p:.4g}" for p in chinchilla["Model Size"]],
            "params": chinchilla["Model Size"].round().astype("int64"),
            "examples": tokens.round().astype("int64"),
            "epochs": 1.0,
            "target": "loss",
            "error": chinchilla["loss"],
            "flops": 2.0 * chinchilla["Model Size"],  # 6PD = (2P)·3·D·1
            "seed": 0,
        }
    )
    db = imported_db(tmp_path, runs)
    out = tmp_path / "plots"
    args = ["plot", "fig1", "--target", "loss", "--db", db, "--out", str(out), "--bootstrap", "0"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written"] == [str(out / "fig1_loss.png")]
    assert report["missing_fits"] == []  # the compute law fits Chinchilla's frontier
    ax = fig1(load_runs(db), None, "loss").axes[0]
    assert ax.get_ylabel() == "loss"
    assert max(max(line.get_ydata()) for line in by_gid(ax, "run")) == pytest.approx(
        chinchilla["loss"].max()
    )


# ── legends ─────────────────────────────────────────────────────────────────────────────


def _legend_over(
    points: np.ndarray, limits: tuple[float, float] | None = None
) -> tuple[Axes, np.ndarray]:
    """A figure with ``points`` (n, 2) as markers and a four-entry legend placed by
    legend_inside (both axes fixed to ``limits`` if given); returns the axes and the points in
    display coordinates after layout."""
    fig, ax = plt.subplots(figsize=(4.0, 3.2), layout="constrained")
    ax.plot(points[:, 0], points[:, 1], "o", label="runs")
    for k in range(3):
        ax.plot([], [], label=f"a longer legend entry {k}")
    if limits is not None:
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
    legend_inside(ax)
    fig.draw_without_rendering()
    return ax, ax.transData.transform(points)


def test_the_legend_stays_inside_where_a_corner_is_free() -> None:
    ax, shown = _legend_over(np.array([[x, x] for x in np.linspace(0, 1, 9)]))  # a diagonal
    box, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert axes.x0 <= box.x0 and box.x1 <= axes.x1 and axes.y0 <= box.y0 and box.y1 <= axes.y1
    assert box.count_contains(shown) == 0
    plt.close(ax.figure)


def test_the_legend_moves_out_where_every_corner_holds_a_point() -> None:
    grid = np.array([[x, y] for x in np.linspace(0, 1, 9) for y in np.linspace(0, 1, 9)])
    ax, shown = _legend_over(grid)
    box, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes.x1  # to the right of the axes
    assert box.count_contains(shown) == 0
    plt.close(ax.figure)


def test_a_marker_whose_disc_reaches_under_the_legend_counts_as_covered() -> None:
    """A point 2 px beside the legend box has its centre outside and half its marker inside
    (the demo's Fig. 8 hid its first compute-optimal run so): the legend moves."""
    limits = (-0.1, 1.1)  # fixed, so that the added point does not move the others
    diagonal = np.array([[x, x] for x in np.linspace(0, 1, 9)])
    ax, _ = _legend_over(diagonal, limits)
    box = ax.get_legend().get_window_extent()
    beside = ax.transData.inverted().transform([box.x1 + 2, (box.y0 + box.y1) / 2])
    plt.close(ax.figure)
    ax, shown = _legend_over(np.vstack([diagonal, beside]), limits)
    radius = plt.rcParams["lines.markersize"] / 2 * ax.figure.dpi / 72
    assert ax.get_legend().get_window_extent().padded(radius).count_contains(shown) == 0
    plt.close(ax.figure)
