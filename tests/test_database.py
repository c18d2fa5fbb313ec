"""Opening results databases: schema creation, migrations, and every kind of wrong database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import DatabaseError
from scalelab.store.engine import SCHEMA_HEAD, _engine_for, open_engine, resolve_url
from scalelab.store.migrate import upgrade_database, upgrade_schema
from scalelab.store.schema import Base

runner = CliRunner()


def test_new_database_is_created_at_head_and_matches_the_models(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []  # the migrations build exactly the ORM's schema


def test_older_schema_says_how_to_upgrade_and_upgrade_keeps_data(tmp_path: Path) -> None:
    db = str(tmp_path / "old.db")
    upgrade_schema(_engine_for(resolve_url(db)), "0001_initial")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO sweeps (name, grid_text, grid_hash, source, created_at) "
            "VALUES ('old', '', 'h', 'grid', '2024-01-01')"
        )
    with pytest.raises(DatabaseError) as info:
        open_engine(db)
    assert str(info.value) == (
        f"{tmp_path / 'old.db'} has an older schema (0001_initial); "
        f"run `scalelab db upgrade --db {tmp_path / 'old.db'}`"
    )
    assert upgrade_database(db) == ("0001_initial", SCHEMA_HEAD)
    with open_engine(db).connect() as conn:
        assert conn.execute(text("SELECT name FROM sweeps")).scalar() == "old"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "new.db")
    open_engine(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    with pytest.raises(DatabaseError, match=r"written by a newer scalelab \(schema 0099_future\)"):
        open_engine(db)


def test_cli_errors_are_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, this is not a database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE birds (name TEXT)")
    cases = {
        str(not_sqlite): f"error: {not_sqlite} is not a scalelab database (not even SQLite); "
        "give another --db",
        str(other): f"error: {other} is not a scalelab database (tables: birds); "
        "give another --db or a new file name",
        str(tmp_path / "missing.db"): f"error: no database at {tmp_path / 'missing.db'}; "
        "run `scalelab enqueue GRID` to create one",
        "postgresql+psycopg://nobody@127.0.0.1:1/none": "error: cannot reach database "
        "postgresql+psycopg://nobody@127.0.0.1:1/none:",
        "nosuchdriver://x": "error: no SQLAlchemy driver for 'nosuchdriver'",
    }
    for db, expected in cases.items():
        result = runner.invoke(app, ["status", "--db", db])
        assert result.exit_code == 2, (db, result.output)
        assert result.output.startswith(expected), result.output
        assert len(result.output.strip().splitlines()) == 1
        assert "Traceback" not in result.output
    assert not (tmp_path / "missing.db").exists()  # status never creates a database


def test_status_on_an_empty_database(db_url: str) -> None:
    open_engine(db_url)
    result = runner.invoke(app, ["status", "--db", db_url, "--json"])
    assert result.exit_code == 0, result.output
    assert '"queued": 0' in result.output
