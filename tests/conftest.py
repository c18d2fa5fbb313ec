"""Shared fixtures: real SQLite files in tmp_path, and a real PostgreSQL server when asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text

# CI (.ci/run sets CI=true) draws the same examples on every run and never fails on timing:
# a property that fails there fails for every landing, with the example to reproduce it.
# Locally the search stays random, so new cases keep being tried.
settings.register_profile(
    "ci", derandomize=True, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
if os.environ.get("CI"):
    settings.load_profile("ci")

PG_URL = os.environ.get("SCALELAB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The server URL; skips where none runs, unless SCALELAB_REQUIRE_PG=1 (CI) makes it fail."""
    reason = _pg_available()
    if reason is not None:
        if os.environ.get("SCALELAB_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required (SCALELAB_REQUIRE_PG=1) but unreachable: {reason}")
        pytest.skip(f"no PostgreSQL server at {PG_URL}: {reason}")
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the server for one test, dropped afterwards."""
    name = f"scalelab_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from scalelab.store.engine import _engine_for

    _engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh database on each backend: a real SQLite file, and a real PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return request.getfixturevalue("pg_url")


def insert_jobs(db: str, n: int, *, max_attempts: int = 3, name: str = "t") -> None:
    """Enqueue n distinct small jobs directly (no grid file, no model tracing)."""
    from scalelab.grid import Grid, JobPlan
    from scalelab.store.engine import open_engine
    from scalelab.store.sweeps import enqueue

    jobs = [
        JobPlan(
            config={"model": "B-1/Wi-8", "examples": 10 + i, "seed": 0, "epochs": [1]},
            config_hash=f"{name}-{i:08d}",
            model="B-1/Wi-8",
            params=1000,
            flops=1000,
            examples=10 + i,
            seed=0,
            epochs=[1],
        )
        for i in range(n)
    ]
    grid = Grid(
        name=name, path="-", text=name, text_hash=name, max_attempts=max_attempts, jobs=jobs
    )
    enqueue(open_engine(db), grid)


# ── SLURM: the one-node cluster that `make services` starts (.ci/services.d/slurm.sh) ────────
SLURM_PARTITION = os.environ.get("SCALELAB_TEST_SLURM_PARTITION", "main")


def _slurm_unavailable() -> str | None:
    """Why no SLURM partition can run jobs here; None when its node and sacct answer."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no sbatch/sinfo on PATH (`make services` installs and starts SLURM)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-p", SLURM_PARTITION, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s (is slurmctld running?)"
    states = out.stdout.split()
    if out.returncode or not {"idle", "mixed", "allocated"} & set(states):
        return f"partition {SLURM_PARTITION!r} has no node up: {out.stderr.strip() or states}"
    # The tests read task states from sacct, which needs slurmdbd.
    acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True)
    if acct.returncode:
        return f"sacct does not answer (is slurmdbd running?): {acct.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def slurm_partition() -> str:
    """A SLURM partition to submit to; skips without one, unless SCALELAB_REQUIRE_SLURM=1 (CI)."""
    reason = _slurm_unavailable()
    if reason is not None:
        if os.environ.get("SCALELAB_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM required (SCALELAB_REQUIRE_SLURM=1) but unusable: {reason}")
        pytest.skip(f"no SLURM cluster: {reason}")
    return SLURM_PARTITION
