"""A failed or dry command writes nothing (issue 13, item 8): no database file, no lock file,
no tables, no rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recorded import grid_file, record_grid
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.store.copy import row_counts
from scalelab.store.engine import open_engine

runner = CliRunner()


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_dry_run_on_no_database_creates_none(tmp_path: Path) -> None:
    grid = grid_file(tmp_path)
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["enqueue", str(grid), "--dry-run", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "sweep main: would add 12 jobs, 0 already present (0 extended with new epochs)"
    )
    assert _files(tmp_path) == ["main.toml"]


@pytest.mark.postgres
def test_dry_run_on_an_empty_postgres_database_adds_no_tables(pg_url: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["enqueue", str(grid_file(tmp_path)), "--dry-run", "--db", pg_url])
    assert result.exit_code == 0, result.output
    assert _tables(pg_url) == []


def test_dry_run_on_a_study_changes_nothing(db_url: str, tmp_path: Path) -> None:
    record_grid(db_url, grid_file(tmp_path, epochs="[1, 2]"))
    lock = Path(f"{db_url}-writers")
    lock.unlink(missing_ok=True)
    before = row_counts(open_engine(db_url))
    bigger = grid_file(tmp_path, epochs="[1, 2, 4]", seeds="[0, 1]")
    result = runner.invoke(app, ["enqueue", str(bigger), "--dry-run", "--json", "--db", db_url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["added"], report["present"], report["extended"]) == (12, 12, 12)
    assert row_counts(open_engine(db_url)) == before
    assert not lock.exists()


def test_a_bad_grid_creates_no_database(tmp_path: Path) -> None:
    grid = grid_file(tmp_path, models='["B-1/Wi-"]')
    result = runner.invoke(app, ["enqueue", str(grid), "--db", str(tmp_path / "runs.db")])
    assert result.exit_code == 2
    assert _files(tmp_path) == ["main.toml"]


def test_fit_writes_nothing_when_it_fails(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = runner.invoke(app, ["fit", "--target", "x", "--db", str(missing)])
    assert result.output == (
        f"error: no database at {missing}; run `scalelab enqueue GRID` to create one\n"
    )
    assert _files(tmp_path) == []
    db = str(tmp_path / "runs.db")
    record_grid(db, grid_file(tmp_path))
    Path(f"{db}-writers").unlink()
    before = row_counts(open_engine(db))
    result = runner.invoke(app, ["fit", "--target", "cifar100", "--db", db])
    assert result.output == (
        "error: no points for target 'cifar100'; targets with points: synthetic-cifar10, upstream\n"
    )
    assert row_counts(open_engine(db)) == before and before["fits"] == 0
    assert not Path(f"{db}-writers").exists()


def test_db_upgrade_of_nothing_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = runner.invoke(app, ["db", "upgrade", "--db", str(missing)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: no database at {missing}; give the --db of an existing study\n"
    )
    assert _files(tmp_path) == []


@pytest.mark.postgres
def test_db_upgrade_of_an_empty_postgres_database_adds_no_tables(pg_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--db", pg_url])
    assert result.exit_code == 2
    assert "holds no scalelab database; nothing to upgrade" in result.output
    assert _tables(pg_url) == []
