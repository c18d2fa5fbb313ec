"""fit_scaling: the result of `scalelab fit` from a load_runs frame, its JSON, notes and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import fit_scaling, render_fit
from scalelab.analysis.synthetic import KnownLaw, synthetic_runs
from scalelab.errors import FitError

LAW = KnownLaw()


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return synthetic_runs(seeds=(0, 1), noise=0.01, target="cifar10")


@pytest.fixture(scope="module")
def result(runs: pd.DataFrame) -> dict:
    return fit_scaling(runs, "cifar10", bootstrap=100, seed=0)


def test_json_has_exactly_the_documented_keys(result: dict) -> None:
    required = {
        "target", "n_points", "frontier", "compute_law", "params_law", "examples_law",
        "allocation", "parametric", "notes", "excluded", "checkpoint_ids",
    }  # fmt: skip
    assert required <= set(result)
    point_keys = {"compute", "error", "params", "examples", "epochs", "model"}
    assert set(result["frontier"][0]) >= point_keys
    assert set(result["compute_law"]) >= {
        "a", "b", "alpha", "e_inf", "alpha_ci", "r2", "holdout_log_rmse"
    }  # fmt: skip
    for law in ("params_law", "examples_law"):
        assert set(result[law]) >= {"a", "alpha", "e_inf", "alpha_ci"}
    assert set(result["allocation"]) >= {
        "epochs", "params_exponent", "params_exponent_ci", "examples_exponent",
        "examples_exponent_ci",
    }  # fmt: skip
    assert set(result["parametric"]) >= {
        "E", "A", "B", "alpha", "beta", "params_exponent", "examples_exponent"
    }  # fmt: skip
    # Strict JSON: no NaN or infinity anywhere.
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_the_generating_law_is_recovered_with_intervals(result: dict) -> None:
    assert result["n_points"] == 6 * 6 * 3  # one point per (P, N, T): the mean of 2 seeds
    assert result["seeds_per_point"] == {"2": 6 * 6 * 3}
    assert result["examples_law"]["alpha"] == pytest.approx(LAW.beta, abs=0.02)
    assert result["params_law"]["alpha"] == pytest.approx(LAW.alpha, abs=0.1)
    par = result["parametric"]
    assert par["alpha"] == pytest.approx(LAW.alpha, abs=0.1)
    assert par["beta"] == pytest.approx(LAW.beta, abs=0.02)
    assert par["E"] == pytest.approx(LAW.E, rel=0.1)
    assert par["B"] == pytest.approx(LAW.b_at(par["epochs"]), rel=0.15)
    for key, truth in (("alpha_ci", LAW.alpha), ("beta_ci", LAW.beta)):
        lo, hi = par[key]
        assert lo <= truth <= hi
    for part, key in (
        ("compute_law", "alpha"), ("params_law", "alpha"), ("examples_law", "alpha"),
        ("allocation", "params_exponent"), ("allocation", "examples_exponent"),
    ):  # fmt: skip
        lo, hi = result[part][f"{key}_ci"]
        assert lo <= result[part][key] <= hi
    assert result["compute_law"]["r2"] > 0.98
    assert result["compute_law"]["holdout_log_rmse"] < 0.2
    # At fixed T, C ∝ P·N: the two allocation exponents add up to about 1.
    alloc = result["allocation"]
    assert alloc["epochs"] == 50
    assert alloc["params_exponent"] + alloc["examples_exponent"] == pytest.approx(1.0, abs=0.05)


def test_frontier_and_checkpoint_ids(runs: pd.DataFrame, result: dict) -> None:
    front = result["frontier"]
    assert [p["compute"] for p in front] == sorted(p["compute"] for p in front)
    assert all(a["error"] > b["error"] for a, b in zip(front, front[1:], strict=False))
    assert sorted(result["checkpoint_ids"]) == sorted(runs["checkpoint_id"].tolist())
    assert result["compute_law"]["n_points"] == len(front)
    text = render_fit(result)
    assert "E(C) = a(b+C)^-α + E∞" in text and "95% interval" in text


def test_the_bootstrap_is_seeded(runs: pd.DataFrame, result: dict) -> None:
    first, again, other = (fit_scaling(runs, "cifar10", bootstrap=20, seed=s) for s in (0, 0, 1))
    assert again["bootstrap_samples"] == first["bootstrap_samples"]
    assert again["parametric"]["alpha_ci"] == first["parametric"]["alpha_ci"]
    assert other["compute_law"]["alpha_ci"] != first["compute_law"]["alpha_ci"]
    boot = result["bootstrap"]
    # Two seeds per configuration: resamples draw seeds within each configuration.
    assert (boot["resamples"], boot["seed"], boot["unit"]) == (100, 0, "seed")
    assert boot["succeeded"]["compute_law"] == boot["succeeded"]["parametric"] == 100
    assert all(n >= 90 for n in boot["succeeded"].values())
    assert len(result["bootstrap_samples"]["compute_law"]) == 100


def test_diverged_runs_and_baselines_are_excluded_and_counted(runs: pd.DataFrame) -> None:
    base = fit_scaling(runs, "cifar10", bootstrap=0)
    extra = runs.iloc[:5].copy()
    extra["checkpoint_id"] += 10_000
    extra["job_id"] += 10_000
    extra.loc[extra.index[:3], "status"] = "diverged"
    extra.loc[extra.index[:3], "error"] = np.nan  # a diverged loss may well be NaN
    extra.loc[extra.index[3:], ["compute", "error"]] = [0.0, 0.999]  # random-init baselines
    result = fit_scaling(pd.concat([runs, extra]), "cifar10", bootstrap=0)
    assert result["excluded"] == {"diverged": 3, "baseline": 2}
    assert result["compute_law"] == base["compute_law"]
    assert "bootstrap: 0 resamples asked for, so no intervals" in result["notes"]
    assert result["compute_law"]["alpha_ci"] is None


def test_parts_the_data_cannot_determine_are_null_with_a_reason() -> None:
    one_model = synthetic_runs(params=(3e7,), examples=tuple(np.geomspace(1e4, 1e7, 8)))
    result = fit_scaling(one_model, "synthetic", bootstrap=20)
    assert result["compute_law"]["alpha"] > 0
    assert result["params_law"] is None
    assert result["allocation"] is None
    assert result["parametric"] is None
    assert result["examples_law"] is not None
    assert (
        "params_law: the params law needs at least 4 model sizes at examples=1e+07, epochs=200; "
        "found 1: add runs with other model sizes there"
    ) in result["notes"]
    assert any(n.startswith("allocation: the allocation at T=50 needs") for n in result["notes"])
    assert any(n.startswith("parametric: the parametric fit needs") for n in result["notes"])
    json.dumps(result, allow_nan=False)


def test_epochs_choose_the_t_of_the_allocation(runs: pd.DataFrame) -> None:
    result = fit_scaling(runs, "cifar10", epochs=200, bootstrap=0)
    assert result["allocation"]["epochs"] == 200
    assert result["parametric"]["epochs"] == 200
    assert result["parametric"]["B"] == pytest.approx(LAW.b_at(200), rel=0.15)


# ── bad input: one-line errors with the exact text ──────────────────────────────────────────


def error_of(df: pd.DataFrame, target: str = "cifar10", **kw) -> str:
    with pytest.raises(FitError) as info:
        fit_scaling(df, target, bootstrap=0, **kw)
    return str(info.value)


def test_no_points_for_the_target(runs: pd.DataFrame) -> None:
    upstream = runs.assign(target="upstream", method="upstream")
    assert error_of(pd.concat([runs, upstream]), "cifar100") == (
        "no points for target 'cifar100'; targets with points: cifar10, upstream"
    )
    assert error_of(runs.iloc[:0]) == (
        "no points for target 'cifar10': the database has no evaluated checkpoints; run "
        "`scalelab run-worker` or `scalelab import FILE` first"
    )


def test_too_few_frontier_points_says_how_many_more_and_where() -> None:
    few = synthetic_runs(params=(1e6,), examples=(1e4, 1e5), epochs=(50,))
    assert error_of(few, "synthetic") == (
        "too few frontier points for the 4-parameter compute law: 2 found, 5 needed; add runs "
        "that put 3 more points on the frontier, e.g. with compute above 1.5e+13 FLOP or below "
        "1.5e+12 FLOP (the frontier spans 1.5e+12 to 1.5e+13 FLOP and its widest gap is "
        "1.5e+12 to 1.5e+13 FLOP)"
    )


def test_nan_or_non_positive_values(runs: pd.DataFrame) -> None:
    bad = runs.copy()
    bad.loc[[0, 7], "error"] = [np.nan, -0.1]
    assert error_of(bad) == (
        "2 points for target 'cifar10' have a NaN, infinite or non-positive error (checkpoints "
        "1, 8); fix or delete them: every error of a fitted point must be positive"
    )
    bad = runs.copy()
    bad.loc[3, "compute"] = -1.0
    assert error_of(bad) == (
        "1 points for target 'cifar10' have a NaN, infinite or non-positive compute (checkpoints "
        "4); fix or delete them: every compute of a fitted point must be positive"
    )


def test_only_diverged_and_baseline_points(runs: pd.DataFrame) -> None:
    dead = runs.iloc[:4].assign(status="diverged")
    assert error_of(dead) == (
        "no points for target 'cifar10' besides 4 diverged and 0 C = 0 baseline points; "
        "finish some runs first"
    )


def test_several_probe_methods_need_a_choice(runs: pd.DataFrame) -> None:
    both = pd.concat([runs, runs.assign(method="linear")])
    assert error_of(both) == (
        "target 'cifar10' has points from 2 methods (import, linear); choose one with --method"
    )
    assert fit_scaling(both, "cifar10", method="linear", bootstrap=0)["method"] == "linear"
    assert error_of(both, method="knn") == (
        "no points for target 'cifar10' with method 'knn'; methods with points: import, linear"
    )


def test_epochs_not_in_the_data_and_negative_bootstrap(runs: pd.DataFrame) -> None:
    assert error_of(runs, epochs=75) == "no points at T=75 epochs; epochs in the data: 50, 100, 200"
    with pytest.raises(FitError, match=r"^--bootstrap must be 0 or more resamples, got -1$"):
        fit_scaling(runs, "cifar10", bootstrap=-1)
