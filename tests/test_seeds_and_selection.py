"""Seeds are averaged and hyper-parameters chosen by one stated rule (issue 13, items 3-4).

References are computed here independently: pandas group means, a brute-force frontier, and
the decoding of which seeds a resample drew.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recorded import grid_file, law, record_grid
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.analysis import fit_scaling
from scalelab.analysis.bootstrap import resample_seeds
from scalelab.analysis.estimates import params_law_points
from scalelab.analysis.points import SELECTION_RULE, PointArrays, select_points
from scalelab.analysis.synthetic import synthetic_runs
from scalelab.cli import app
from scalelab.probe import run_probe
from scalelab.store.results import probe_validation_error

runner = CliRunner()


def brute_force_frontier(compute: np.ndarray, error: np.ndarray) -> list[tuple[float, float]]:
    """Points whose error is below that of every other point with less or equal compute."""
    front = []
    for i in range(len(error)):
        others = [j for j in range(len(error)) if j != i and compute[j] <= compute[i]]
        if all(error[i] < error[j] for j in others):
            front.append((float(compute[i]), float(error[i])))
    return sorted(front)


@pytest.fixture(scope="module")
def three_seeds() -> pd.DataFrame:
    return synthetic_runs(seeds=(0, 1, 2), noise=0.05, target="t")


def test_the_frontier_is_made_of_seed_means(three_seeds: pd.DataFrame) -> None:
    result = fit_scaling(three_seeds, "t", bootstrap=0)
    means = three_seeds.groupby(["params", "examples", "epochs"], as_index=False).agg(
        compute=("compute", "mean"), error=("error", "mean")
    )
    expected = brute_force_frontier(means["compute"].to_numpy(), means["error"].to_numpy())
    got = [(p["compute"], p["error"]) for p in result["frontier"]]
    assert len(got) == len(expected)
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-12)
    assert all(p["seeds"] == 3 and len(p["checkpoint_ids"]) == 3 for p in result["frontier"])
    assert result["n_points"] == len(means) and result["seeds_per_point"] == {"3": len(means)}
    # Approach 3 at T=50 fits one point per (P, N), not one per seed.
    assert result["parametric"]["n_points"] == 36


def test_the_bottleneck_laws_use_seed_means(three_seeds: pd.DataFrame) -> None:
    points = params_law_points(PointArrays.from_points(select_points(three_seeds, "t")))
    rows = three_seeds[
        (three_seeds["examples"] == three_seeds["examples"].max())
        & (three_seeds["epochs"] == three_seeds["epochs"].max())
    ]
    expected = rows.groupby("params")["error"].mean()
    assert points.x.tolist() == expected.index.astype(float).tolist()
    assert points.error == pytest.approx(expected.to_numpy(), rel=1e-12)


def _seeded_frame() -> tuple[pd.DataFrame, dict[float, float], tuple[float, ...]]:
    """2 models x 2 N x T in (1, 2) x 3 seeds; seed s multiplies the T's base error by 1+w_s."""
    w = (0.001, 0.01, 0.1)  # decimal digits: a mean of drawn seeds tells which were drawn
    base = {1.0: 0.5, 2.0: 0.4}
    rows = []
    for job, (p, n, s) in enumerate(itertools.product((1e4, 1e5), (1e3, 1e4), range(3))):
        for t, b in base.items():
            rows.append(
                {"checkpoint_id": len(rows) + 1, "job_id": job + 1, "sweep": "s", "source": "grid",
                 "status": "done", "model": f"m{p:g}", "params": p, "examples": n, "seed": s,
                 "epochs": t, "compute": 3 * p * n * t, "target": "t", "method": "ridge",
                 "error": b * (1 + w[s]), "upstream_error": 0.5, "setting": "x"}
            )  # fmt: skip
    return pd.DataFrame(rows), base, w


def test_the_bootstrap_resamples_seeds_within_each_configuration() -> None:
    frame, base, w = _seeded_frame()
    data = PointArrays.from_points(select_points(frame, "t"))
    drawn = set()
    for sample in resample_seeds(data, 50, seed=3):
        per_config: dict[int, set[tuple[int, ...]]] = {}
        for config, t, error in zip(data.run, data.epochs, sample.error, strict=True):
            x = round((error / base[t] - 1) * 3 * 1000)  # = c0 + 10 c1 + 100 c2
            counts = (x % 10, x // 10 % 10, x // 100)
            assert sum(counts) == 3  # three seeds drawn, with replacement
            per_config.setdefault(int(config), set()).add(counts)
        assert all(len(c) == 1 for c in per_config.values())  # the same seeds at every T
        drawn |= set().union(*per_config.values())
    assert len(drawn) > 3  # draws differ between resamples and configurations


def _two_settings(scores: str) -> pd.DataFrame:
    """Settings a and b of 2 models x 2 N x 2 T x 2 seeds: by upstream error a wins for the
    small model and b for the large one; by the target error and by the probe's validation
    error (which tracks it) the other way round. ``scores``: which errors the rows carry."""
    rows = []
    combos = itertools.product(("a", "b"), (1e4, 1e5), (1e3, 1e4), range(2))
    for job, (setting, p, n, s) in enumerate(combos):
        small = p == 1e4
        up = 0.3 if (setting == "a") == small else 0.4
        err = 0.2 if (setting == "a") != small else 0.25
        for t in (1.0, 2.0):
            rows.append(
                {"checkpoint_id": len(rows) + 1, "job_id": job + 1, "sweep": "s",
                 "source": "grid", "status": "done", "model": f"m{p:g}", "params": p,
                 "examples": n, "seed": s, "epochs": t, "compute": 3 * p * n * t, "target": "t",
                 "method": "ridge", "error": err / t * (1 + 0.01 * s),
                 "upstream_error": up / t if scores != "imported" else np.nan,
                 "validation_error": (err + 0.01) / t if scores == "validated" else np.nan,
                 "setting": setting}
            )  # fmt: skip
    return pd.DataFrame(rows)


# What decides in each case: the probe's validation error where the probe held rows out, else
# the upstream error (a probe that chose nothing), else (imports) the target error itself.
CASES = {
    "validated": ("validation_error", "by_validation_error"),
    "grid": ("upstream_error", "by_upstream_error"),
    "imported": ("error", "by_target_error"),
}


@pytest.mark.parametrize("scores", list(CASES))
def test_one_setting_per_model_n_t_by_the_stated_rule(scores: str) -> None:
    frame = _two_settings(scores)
    points = select_points(frame, "t")
    score, counter = CASES[scores]
    means = frame.groupby(["model", "examples", "epochs", "setting"])[score].mean().reset_index()
    best = means.loc[means.groupby(["model", "examples", "epochs"])[score].idxmin()]
    winners = frame.merge(best[["model", "examples", "epochs", "setting"]])
    assert sorted(points.frame["checkpoint_id"]) == sorted(winners["checkpoint_id"])
    assert set(winners.loc[winners["params"] == 1e4, "setting"]) == {
        "a" if scores == "grid" else "b"
    }
    sel = points.selection
    assert sel["rule"] == SELECTION_RULE
    assert sel["contested"] == 2 * 2 * 2
    assert {k: sel[k] for _, k in CASES.values()} == {
        k: 8 * (k == counter) for _, k in CASES.values()
    }
    assert sel["dropped"] == len(frame) - len(winners) == 16
    assert sel["dropped_runs"] == 8  # each losing (model, N, setting) lost at every T
    assert len(points.averaged) == 8 and (points.averaged["seeds"] == 2).all()


def test_a_setting_without_a_validation_error_sends_its_contest_to_the_upstream_error() -> None:
    frame = _two_settings("validated")
    # One evaluation of one setting at the small model's (N = 1e3, T = 1) lacks it.
    first = (frame["params"] == 1e4) & (frame["examples"] == 1e3) & (frame["epochs"] == 1.0)
    frame.loc[frame.index[first & (frame["setting"] == "b")][0], "validation_error"] = np.nan
    points = select_points(frame, "t")
    assert points.selection["by_validation_error"] == 7
    assert points.selection["by_upstream_error"] == 1
    kept = points.frame[(points.frame["params"] == 1e4) & (points.frame["examples"] == 1e3)]
    assert set(kept.loc[kept["epochs"] == 1.0, "setting"]) == {"a"}  # upstream's choice
    assert set(kept.loc[kept["epochs"] == 2.0, "setting"]) == {"b"}  # validation's choice


@pytest.mark.parametrize(
    "method, options",
    [("ridge", {"penalties": [1e-4, 1e-2, 1.0, 100.0]}), ("logreg", {"l2": [1e-4, 1e-2, 1.0]})],
)
def test_the_validation_error_is_that_of_the_setting_the_probe_chose(method, options) -> None:
    g = torch.Generator().manual_seed(4)
    y = torch.arange(300) % 3
    x = torch.randn(3, 8, generator=g)[y] * 0.7 + torch.randn(300, 8, generator=g)
    details = run_probe(x, y, x, y, 3, method, settings=options, seed=2).details
    grid = options.get("penalties") or options["l2"]
    chosen = grid.index(details.get("penalty", details.get("l2_chosen")))
    assert probe_validation_error(details) == details["validation_errors"][chosen]
    assert probe_validation_error({}) is None  # a probe that held out nothing


def test_fit_chooses_on_the_probes_validation_error_not_the_upstream_error(
    db_url: str, tmp_path: Path
) -> None:
    def upstream_misleads(config: dict, t: float) -> tuple[float, float, float]:
        error, _ = law(config, t)
        best_upstream = config["train"]["lr"] == 1e-4  # but it probes 5% worse on the target
        noise = 1 + 0.01 * config["seed"]
        target = error * noise * (1.05 if best_upstream else 1.0)
        return target, error * (1.0 if best_upstream else 1.05), target * 1.01

    record_grid(db_url, grid_file(tmp_path, lr="[1e-4, 3e-4]", seeds="[0, 1]"), upstream_misleads)
    runs = load_runs(db_url)
    probed = runs[runs["target"] == "synthetic-cifar10"]
    assert (probed["validation_error"] == probed["error"] * 1.01).all()
    assert runs.loc[runs["target"] == "upstream", "validation_error"].isna().all()
    out = tmp_path / "fit.json"
    args = ["fit", "--target", "synthetic-cifar10", "--bootstrap", "0", "--json", str(out)]
    result = runner.invoke(app, [*args, "--db", db_url])
    assert result.exit_code == 0, result.output
    fit = json.loads(out.read_text())
    assert fit["selection"]["by_validation_error"] == fit["selection"]["contested"] == 4 * 3 * 3
    assert sorted(fit["checkpoint_ids"]) == sorted(
        probed.loc[probed["lr"] == 3e-4, "checkpoint_id"]
    )


def test_fit_json_names_sweeps_selection_and_seeds(db_url: str, tmp_path: Path) -> None:
    def lr_matters(config: dict, t: float) -> tuple[float, float]:
        error, _ = law(config, t)
        tuned = config["train"]["lr"] == 1e-4  # best upstream; the other rate looks better
        noise = 1 + 0.01 * config["seed"]  # on the target: a test-set pick would take it
        # (the probe records no validation error here, so the upstream error decides)
        return error * noise * (1.05 if tuned else 1.0), error * (1.0 if tuned else 1.05)

    record_grid(db_url, grid_file(tmp_path, lr="[1e-4, 3e-4]", seeds="[0, 1]"), lr_matters)
    out = tmp_path / "fit.json"
    args = ["fit", "--target", "synthetic-cifar10", "--bootstrap", "20", "--json", str(out)]
    result = runner.invoke(app, [*args, "--db", db_url])
    assert result.exit_code == 0, result.output
    fit = json.loads(out.read_text())
    assert fit["sweeps"] == ["main"]
    assert fit["selection"]["rule"] == SELECTION_RULE
    assert fit["selection"]["dropped"] == 4 * 3 * 3 * 2  # the 3e-4 runs at every point
    assert fit["seeds_per_point"] == {"2": 4 * 3 * 3}
    assert fit["bootstrap"]["unit"] == "seed"
    runs = load_runs(db_url)
    tuned = runs[(runs["target"] == "synthetic-cifar10") & (runs["lr"] == 1e-4)]
    assert sorted(fit["checkpoint_ids"]) == sorted(tuned["checkpoint_id"])
    assert f"hyper-parameters: {SELECTION_RULE}; dropped 72 evaluations (24 runs)" in (
        result.output
    )
    assert "points of k seeds: 36 of 2" in result.output
