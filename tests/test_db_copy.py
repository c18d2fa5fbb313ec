"""`scalelab db copy` between SQLite and a real PostgreSQL server: nothing lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import insert_jobs
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.cli import app
from scalelab.store.copy import row_counts
from scalelab.store.engine import open_engine
from scalelab.store.queue import claim, complete
from scalelab.store.results import CheckpointMetrics, ProbeRecord, record_checkpoint, save_fit

runner = CliRunner()


def _study(db: str) -> None:
    insert_jobs(db, 3)
    engine = open_engine(db)
    lease = claim(engine, "w")
    for t in (1, 2):
        record_checkpoint(
            engine,
            lease,
            CheckpointMetrics(
                epochs=t,
                flops=1e3,
                compute=3e4 * t,
                upstream_error=0.5 / t,
                train_loss=float("nan"),
            ),
            [ProbeRecord("cifar100", "ridge", 0.7 / t, {"lambda": 1e-3}, 0.1)],
            device="cpu",
            lease_s=60,
        )
    complete(engine, lease)
    save_fit(engine, "cifar100", {"compute_law": {"alpha": 0.25}}, [1, 2])


@pytest.mark.postgres
def test_round_trip_sqlite_postgres_sqlite(tmp_path: Path, pg_url: str) -> None:
    first = str(tmp_path / "a.db")
    _study(first)
    result = runner.invoke(app, ["db", "copy", "--from", first, "--to", pg_url])
    assert result.exit_code == 0, result.output
    back = str(tmp_path / "b.db")
    assert runner.invoke(app, ["db", "copy", "--from", pg_url, "--to", back]).exit_code == 0
    counts = row_counts(open_engine(first))
    assert counts == row_counts(open_engine(pg_url)) == row_counts(open_engine(back))
    assert counts["jobs"] == 3 and counts["probes"] == 2 and counts["fits"] == 1
    pd.testing.assert_frame_equal(load_runs(first), load_runs(back))
    pd.testing.assert_frame_equal(load_runs(first), load_runs(pg_url))
    # Sequences moved on: new rows on PostgreSQL get fresh ids.
    insert_jobs(pg_url, 2, name="more")
    assert row_counts(open_engine(pg_url))["jobs"] == 5


def test_copy_refuses_a_target_with_data(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    _study(a)
    _study(b)
    result = runner.invoke(app, ["db", "copy", "--from", a, "--to", b])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: the target database already holds data (tables: fits, provenance, sweeps, jobs, "
        "checkpoints, probes); copy into a new, empty database"
    )
