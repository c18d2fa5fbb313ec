"""IsoFLOP grids: compute budgets in, N = C / (3·FLOP(f)·T) per model out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.grid import parse_grid
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.schema import Job

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

GRID = """name = "iso"
dataset = "synthetic"
resolution = 16

[isoflop]
budgets = [1e10, 1e11, 1e12]
models = ["B-1/Wi-64", "B-2/Wi-128", "B-4/Wi-256"]
epochs = 1

[train]
batch_size = 32
"""
SYNTHETIC_EXAMPLES = 1_200_000  # the embedded pretraining set


def write(tmp_path: Path, text: str = GRID) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_each_budget_and_model_gets_the_n_that_spends_the_budget(tmp_path: Path) -> None:
    grid = parse_grid(write(tmp_path))
    assert len(grid.isoflop) == 9
    for run in grid.isoflop:
        # Eq. 4 with N rounded: within half an example's compute of the budget.
        per_example = 3 * run.flops * 1
        assert abs(run.examples * per_example - run.budget) <= per_example / 2
        assert run.compute == pytest.approx(run.examples * per_example)
    (capped,) = [r for r in grid.isoflop if r.skipped]
    assert (capped.budget, capped.model) == (1e12, "B-1/Wi-64")
    assert capped.examples > SYNTHETIC_EXAMPLES
    assert capped.skipped == "N > the 1,200,000 examples"
    kept = {(r.model, r.examples) for r in grid.isoflop if not r.skipped}
    assert {(j.model, j.examples) for j in grid.jobs} == kept
    assert all(j.epochs == [1] for j in grid.jobs)


def test_dry_run_prints_the_profile_table(tmp_path: Path) -> None:
    grid = write(tmp_path)
    result = runner.invoke(
        app, ["enqueue", str(grid), "--dry-run", "--db", str(tmp_path / "r.db")], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "IsoFLOP profiles: N = C / (3·FLOP(f)·T)" in result.output
    assert "left out" in result.output and "N > the" in result.output
    assert "would add 8 jobs" in result.output
    as_json = runner.invoke(
        app, ["enqueue", str(grid), "--dry-run", "--json", "--db", str(tmp_path / "r.db")]
    )
    rows = json.loads(as_json.output)["isoflop"]
    assert [r["budget"] for r in rows] == [1e10] * 3 + [1e11] * 3 + [1e12] * 3
    assert [r["skipped"] for r in rows].count("N > the 1,200,000 examples") == 1


def test_enqueue_writes_the_runs_once(db_url: str, tmp_path: Path) -> None:
    grid = write(tmp_path)
    expected = {(r.model, r.examples) for r in parse_grid(grid).isoflop if not r.skipped}
    for added in (8, 0):  # idempotent
        result = runner.invoke(app, ["enqueue", str(grid), "--db", db_url])
        assert result.exit_code == 0, result.output
        assert f"added {added} jobs" in result.output
    with session_scope(open_engine(db_url), write=False) as session:
        jobs = session.scalars(select(Job)).all()
        assert {(j.model, j.examples) for j in jobs} == expected


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            ("resolution = 16\n", "resolution = 16\nexamples = [100]\n"),
            "grid.toml:4: 'examples' and [isoflop] both define the runs; an IsoFLOP grid takes "
            "models and epochs from [isoflop] and derives N from its budgets: remove the "
            "top-level 'examples'",
        ),
        (
            ("epochs = 1", "epochs = [1, 2]"),
            "grid.toml:8: [isoflop] epochs must be one integer T ≥ 1 (a budget fixes N·T), "
            "got [1, 2]",
        ),
        (
            ("budgets =", "budget ="),
            "grid.toml:6: unknown key 'budget' in [isoflop]; did you mean 'budgets'?",
        ),
        (
            ('"B-1/Wi-64", ', ""),
            "grid.toml:7: [isoflop] models must list at least 3 model names (a parabola per "
            'budget needs 3 sizes), like "B-2/Wi-128"',
        ),
        (
            ("1e10,", "-1e10,"),
            "grid.toml:6: [isoflop] budgets must be positive numbers, got -10000000000.0",
        ),
        (
            ("budgets = [1e10, 1e11, 1e12]", "budgets = [1e-3]"),
            "grid.toml:6: no run of [isoflop] fits the data: N < 1: the budget does not buy one "
            "example; raise it or drop the model",
        ),
    ],
)
def test_bad_isoflop_grids_are_one_line_and_write_nothing(
    tmp_path: Path, replace: tuple[str, str], message: str
) -> None:
    grid = write(tmp_path, GRID.replace(*replace))
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["enqueue", str(grid), "--db", str(db)])
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path}/{message}\n"
    assert not db.exists()


def test_the_shipped_isoflop_grid_parses() -> None:
    grid = parse_grid(ROOT / "grids" / "isoflop.toml")
    assert sorted({r.budget for r in grid.isoflop}) == [1e11, 3e11, 1e12]
    assert len(grid.jobs) == 11
