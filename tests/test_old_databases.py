"""Migrations on databases the old code wrote (issue 13, item 9): tests/data/old/*.db, made by
tests/make_old_databases.py from old commits, are upgraded, loaded and fitted."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.cli import app
from scalelab.store.engine import SCHEMA_HEAD, open_engine
from scalelab.store.identity import study_id

runner = CliRunner()
OLD = Path(__file__).parent / "data" / "old"


def _raw(db: Path) -> tuple[int, int, list[str]]:
    """Rows as the old code left them: checkpoints, probes, sweep names (read with sqlite3)."""
    with sqlite3.connect(db) as conn:
        ckpts = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
        probes = conn.execute("SELECT COUNT(*) FROM probes").fetchone()[0]
        sweeps = sorted(r[0] for r in conn.execute("SELECT name FROM sweeps"))
    return ckpts, probes, sweeps


@pytest.mark.parametrize("revision", ["0001_initial", "0002_fits_provenance"])
def test_an_old_database_upgrades_loads_and_fits(
    revision: str, db_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    shutil.copy(OLD / f"runs-{revision[:4]}.db", db)
    ckpts, probes, sweeps = _raw(db)
    assert sweeps == ["import:law.csv", "old"]
    refused = runner.invoke(app, ["status", "--db", str(db)])
    assert refused.output == (
        f"error: {db} has an older schema ({revision}); run `scalelab db upgrade --db {db}`\n"
    )
    upgraded = runner.invoke(app, ["db", "upgrade", "--db", str(db)])
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output == f"schema {revision} -> {SCHEMA_HEAD}\n"
    assert len(study_id(open_engine(str(db)))) == 36  # the upgrade gave the study its identity
    if db_url != str(tmp_path / "runs.db"):  # PostgreSQL: the upgraded study moved there
        copied = runner.invoke(app, ["db", "copy", "--from", str(db), "--to", db_url])
        assert copied.exit_code == 0, copied.output
        db = db_url
    runs = load_runs(str(db))
    upstream = runs[runs["target"] == "upstream"]
    assert len(runs) - len(upstream) == probes and runs["checkpoint_id"].nunique() == ckpts
    trained = runs[runs["sweep"] == "old"]
    assert (
        set(trained["model"]) == {"B-1/Wi-16", "B-1/Wi-32"} and trained["error"].between(0, 1).all()
    )
    out = tmp_path / "fit.json"
    args = ["fit", "--target", "synthetic-cifar10", "--sweep", "import:law.csv"]
    fitted = runner.invoke(app, [*args, "--bootstrap", "0", "--json", str(out), "--db", str(db)])
    assert fitted.exit_code == 0, fitted.output
    fit = json.loads(out.read_text())
    assert fit["sweeps"] == ["import:law.csv"] and fit["n_points"] == 36
    assert 0 < fit["compute_law"]["alpha"] < 2
