"""Fits are per study (issue 13, item 2): sweeps are selected by name and pooled only when
their recipes agree. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from recorded import grid_file, record_grid
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.cli import app
from scalelab.errors import SweepError
from scalelab.figures.batch_size import batch_size_studies

runner = CliRunner()
FIT = ["fit", "--target", "synthetic-cifar10", "--bootstrap", "0"]


def _fit(db: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "fit.json"
    result = runner.invoke(app, [*FIT, "--db", db, "--json", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.fixture
def two_recipes(db_url: str, tmp_path: Path) -> str:
    """Sweep 'main' and a batch-size sweep 'bs' of the same models with other batch sizes."""
    record_grid(db_url, grid_file(tmp_path, "main"))
    record_grid(
        db_url,
        grid_file(tmp_path, "bs", models='["B-2/Wi-128"]', batch_size="[64, 1024]"),
        lambda config, t: (0.9, 0.9),  # worse than main everywhere: it must not leak in
    )
    return db_url


def test_sweeps_with_different_recipes_are_not_pooled(two_recipes: str, tmp_path: Path) -> None:
    db = two_recipes
    before = load_runs(db)
    result = runner.invoke(app, [*FIT, "--db", db])
    assert result.exit_code == 2
    assert result.output == (
        "error: sweeps bs, main have different recipes (train.batch_size); pass --sweep NAME "
        "to use one of them, or --pool-sweeps to pool them\n"
    )
    main = _fit(db, tmp_path, "--sweep", "main")
    assert main["sweeps"] == ["main"]
    ids = set(before.loc[before["sweep"] == "main", "checkpoint_id"])
    assert set(main["checkpoint_ids"]) == ids
    assert all(p["error"] < 0.9 for p in main["frontier"])
    pooled = _fit(db, tmp_path, "--pool-sweeps")
    assert pooled["sweeps"] == ["bs", "main"]
    # Pooled, bs's worse batch sizes compete with main's and lose at every (model, N, T).
    assert pooled["selection"]["dropped"] == 1 * 3 * 3 * 2
    assert set(pooled["checkpoint_ids"]) == ids
    target = ["--target", "synthetic-cifar10", "--db", db]
    plan = ["plan", "--budget", "1e12", "--classes", "10", *target]
    plot = ["plot", "fig1", "--out", str(tmp_path / "plots"), *target]
    for args in (plan, plot):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2, refused.output
        assert refused.output.startswith("error: sweeps bs, main have different recipes")


def test_sweeps_with_the_same_recipe_pool_by_default(db_url: str, tmp_path: Path) -> None:
    record_grid(db_url, grid_file(tmp_path, "small", models='["B-1/Wi-16", "B-1/Wi-64"]'))
    record_grid(db_url, grid_file(tmp_path, "large", models='["B-2/Wi-128", "B-2/Wi-256"]'))
    fit = _fit(db_url, tmp_path)
    assert fit["sweeps"] == ["large", "small"]
    assert len(fit["checkpoint_ids"]) == 4 * 3 * 3


def test_imports_pool_only_under_one_name(db_url: str, tmp_path: Path) -> None:
    record_grid(db_url, grid_file(tmp_path, "main"))
    runs = load_runs(db_url)
    csv = tmp_path / "elsewhere.csv"
    runs[runs["target"] == "synthetic-cifar10"][
        ["model", "params", "examples", "epochs", "target", "error"]
    ].to_csv(csv, index=False)
    assert runner.invoke(app, ["import", str(csv), "--db", db_url]).exit_code == 0
    assert set(load_runs(db_url)["sweep"]) == {"main", "elsewhere"}  # the file's stem
    result = runner.invoke(app, [*FIT, "--db", db_url])
    assert result.output == (
        "error: sweeps elsewhere, main have different recipes (elsewhere is imported: no "
        "recipe); pass --sweep NAME to use one of them, or --pool-sweeps to pool them\n"
    )
    again = tmp_path / "again.csv"
    csv.rename(again)
    added = runner.invoke(app, ["import", str(again), "--sweep", "elsewhere", "--db", db_url])
    assert added.exit_code == 0, added.output
    assert _fit(db_url, tmp_path, "--sweep", "elsewhere")["sweeps"] == ["elsewhere"]
    clash = runner.invoke(app, ["import", str(again), "--sweep", "main", "--db", db_url])
    assert clash.exit_code == 2
    assert clash.output == (
        "error: sweep 'main' holds runs from a grid; name the import with --sweep OTHER\n"
    )


def test_load_runs_and_export_select_sweeps(two_recipes: str, tmp_path: Path) -> None:
    db = two_recipes
    assert set(load_runs(db, sweeps=["bs"])["sweep"]) == {"bs"}
    assert set(load_runs(db)["sweep"]) == {"bs", "main"}
    with pytest.raises(SweepError) as info:
        load_runs(db, sweeps=["nope"])
    assert str(info.value) == "no sweep named 'nope'; sweeps in this database: bs, main"
    out = tmp_path / "bs.csv"
    result = runner.invoke(app, ["export", "--out", str(out), "--sweep", "bs", "--db", db])
    assert result.exit_code == 0, result.output
    exported = pd.read_csv(out)
    assert set(exported["sweep"]) == {"bs"} and len(exported) == len(load_runs(db, ["bs"]))


def test_the_batch_size_figure_reads_each_sweep_on_its_own(two_recipes: str) -> None:
    runs = load_runs(two_recipes)
    rows = runs[runs["target"] == "synthetic-cifar10"]
    studies = batch_size_studies(rows)
    # main trained B-2/Wi-128 at batch 256 only: it is not part of bs's study.
    assert [name for name, _ in studies] == ["bs: B-2/Wi-128, N = 1k", "bs: B-2/Wi-128, N = 4k",
                                             "bs: B-2/Wi-128, N = 16k"]  # fmt: skip
    for _, study in studies:
        assert set(study["batch_size"]) == {64, 1024}


def test_a_job_another_sweep_enqueued_first_is_named_at_enqueue(db_url: str, tmp_path: Path):
    """A job belongs to the sweep that enqueued it first; a second sweep with the same
    configuration reuses it and `fit --sweep` of the second does not see it, so enqueue says
    so (the demo's batch-size sweep shared a job with the demo grid that way)."""
    record_grid(db_url, grid_file(tmp_path, "main"))
    shared = grid_file(tmp_path, "other", models='["B-1/Wi-16"]', examples="[1000, 2000]")
    result = runner.invoke(app, ["enqueue", str(shared), "--db", db_url])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "note: 1 of these jobs was enqueued first by sweep 'main' and belong to it: fits of "
        "sweep 'other' do not see them unless they read both (--sweep other --sweep main); a "
        "grid of its own models, N or seeds keeps the sweeps apart"
    )
    as_json = runner.invoke(app, ["enqueue", str(shared), "--db", db_url, "--dry-run", "--json"])
    assert json.loads(as_json.output)["elsewhere"] == {"main": 1}
    # What the note warns of: the shared job's rows are read under 'main' only.
    runs = load_runs(db_url, ["other"])
    assert set(runs["examples"]) <= {2000}


def test_a_grid_of_its_own_gets_no_note(db_url: str, tmp_path: Path) -> None:
    record_grid(db_url, grid_file(tmp_path, "main"))
    own = grid_file(tmp_path, "other", models='["B-1/Wi-16"]', examples="[2000]")
    result = runner.invoke(app, ["enqueue", str(own), "--db", db_url, "--json"])
    assert json.loads(result.output)["elsewhere"] == {}
