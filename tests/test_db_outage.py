"""The database going away under real workers: a PostgreSQL restart while 3 workers train,
a server down for longer than half a lease, and queue writes retried through an outage.

These stop and restart a private cluster (``scalelab_restart`` at port 5439, made by
.ci/services.d/postgres.sh), never the main one other tests use.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from test_stall import wait_for
from test_worker import checkpoints, enqueue, jobs, scalelab, tiny_grid

from scalelab.store.engine import _engine_for, open_engine
from scalelab.store.queue import claim, release

pytestmark = pytest.mark.postgres

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5439"
CLUSTER = "scalelab_restart"


def pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"), key=float)[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, action],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def restart_db() -> Iterator[str]:
    """A fresh database on the private cluster; skips where it is absent (CI requires it)."""
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no private cluster here"
        if os.environ.get("SCALELAB_REQUIRE_PG") == "1":
            pytest.fail(f"private cluster {CLUSTER} required but unreachable: {exc}")
        pytest.skip(f"no private PostgreSQL cluster at {SERVER} (run .ci/services.d/postgres.sh)")
    name = f"scalelab_restart_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    yield url
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5439"]).returncode:
        pg_ctl("start")  # a failed test may have left it stopped
    _engine_for(url).dispose()
    admin.dispose()
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_three_workers_survive_a_database_restart_and_do_every_job_once(
    restart_db: str, tmp_path: Path
) -> None:
    grid = tiny_grid(tmp_path, examples="[1024, 1280, 1536]", seeds="[0, 1]", epochs="[1, 2]")
    enqueue(grid, restart_db)
    args = ["run-worker", "--until-empty", "--device", "cpu", "--db", restart_db]
    workers = [
        scalelab(*args, "--workdir", str(tmp_path / "work"), env={"SCALELAB_WORKERS_PER_HOST": "3"})
        for _ in range(3)
    ]
    for worker in workers:
        wait_for(worker, "epoch 1/2")
    pg_ctl("restart")  # all three are mid-job
    outs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], "\n".join(outs)
    done = jobs(restart_db)
    assert len(done) == 6 and {j.status for j in done} == {"done"}
    repeated = [(j.id, j.attempts, j.last_error) for j in done if j.attempts != 1]
    assert not repeated, f"{repeated}\n" + "\n".join(outs)
    stored = [(c.job_id, c.epochs) for c in checkpoints(restart_db)]
    assert stored == [(j.id, t) for j in done for t in (1.0, 2.0)]  # none lost, none twice


def _train_through_an_outage(
    db: str, tmp_path: Path, *, epochs: int, timeout_s: float, lease_min: float = 0.2
) -> tuple[subprocess.Popen, str, float]:
    """One worker trains a job of ``epochs`` epochs of 2,000 images; the server stops after
    its first epoch (the monotonic time returned) and starts again once the worker has exited
    (or ``timeout_s`` passed). A lease of ``lease_min`` minutes (12 s), renewed every quarter
    of it: half a lease without a renewal stops the job."""
    enqueue(tiny_grid(tmp_path, examples="[2000]", epochs=f"[{epochs}]"), db)
    args = ["run-worker", "--until-empty", "--device", "cpu", "--db", db]
    worker = scalelab(*args, "--workdir", str(tmp_path / "work"), "--lease-min", str(lease_min))
    wait_for(worker, f"epoch 1/{epochs}")
    pg_ctl("stop")
    stopped_at = time.monotonic()
    try:
        out, _ = worker.communicate(timeout=timeout_s)
    finally:
        pg_ctl("start")
    return worker, out, stopped_at


def test_a_database_down_past_half_a_lease_stops_the_job_keeping_its_checkpoint(
    restart_db: str, tmp_path: Path
) -> None:
    # Far longer than the 6 s it takes to notice (2,000 images an epoch train in about 0.1 s).
    worker, out, stopped_at = _train_through_an_outage(
        restart_db, tmp_path, epochs=500, timeout_s=60
    )
    assert worker.returncode == 3, out
    assert time.monotonic() - stopped_at < 20
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        f"error: job 1: stopped, its checkpoint kept in {tmp_path / 'work'}: the lease could "
        "not be renewed for "
    ), out
    assert last.endswith(" s (over half the 12 s lease): database unreachable"), out
    assert list((tmp_path / "work").glob("study-*/job-1/latest.pt"))
    (job,) = jobs(restart_db)
    assert job.status == "running"  # the release could not reach the server: the lease lapses


def test_a_database_down_when_a_job_ends_stops_the_worker_keeping_its_checkpoint(
    restart_db: str, tmp_path: Path
) -> None:
    # Training ends (2 s, 4 s on a loaded 2-core machine) before a stale lease is noticed
    # (12 s with a 24 s lease; with 12 s, a slow CI run noticed it first): recording T fails,
    # then so does the release, for a whole lease. One line, exit 3, the checkpoint on disk.
    worker, out, _ = _train_through_an_outage(
        restart_db, tmp_path, epochs=20, timeout_s=120, lease_min=0.4
    )
    assert worker.returncode == 3, out
    assert "Traceback" not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        f"error: job 1: stopped, its checkpoint kept in {tmp_path / 'work'}: the database was "
        "unavailable (OperationalError: "
    ), out
    assert last.endswith(
        "and did not answer again within the 24 s lease; it will lapse and the job be claimed again"
    ), out
    assert list((tmp_path / "work").glob("study-*/job-1/T20.pt"))
    (job,) = jobs(restart_db)
    assert job.status == "running"  # the release could not reach the server: the lease lapses


def test_a_release_sent_while_the_database_is_down_lands_when_it_is_back(
    restart_db: str, tmp_path: Path
) -> None:
    from scalelab.store.retry import with_retries

    enqueue(tiny_grid(tmp_path), restart_db)
    engine = open_engine(restart_db)
    lease = claim(engine, "w", lease_s=600)
    assert lease is not None
    pg_ctl("stop")
    threading.Timer(3.0, pg_ctl, args=("start",)).start()
    with_retries("release", lambda _retried: release(engine, lease, "bye"), give_up_s=60)
    (job,) = jobs(restart_db)
    assert (job.status, job.attempts, job.last_error) == ("queued", 0, "bye")


def test_a_retried_write_whose_first_try_committed_changes_nothing(db_url: str) -> None:
    """A commit that reached the server while the client saw the connection drop is sent
    again by the worker: under the same claim token the second send is a no-op, and a retried
    claim takes up the job its first try claimed instead of claiming a second one."""
    from conftest import insert_jobs

    from scalelab.store.queue import complete

    insert_jobs(db_url, 2)
    engine = open_engine(db_url)
    first = claim(engine, "w", lease_s=600)
    again = claim(engine, "w", lease_s=600, adopt_own=True)
    assert first is not None and again == first  # same job, same token, one attempt
    complete(engine, first)
    complete(engine, first)
    second = claim(engine, "w", lease_s=600)
    assert second is not None and second.job_id == 2
    release(engine, second, "bye")
    release(engine, second, "bye")
    done, queued = jobs(db_url)
    assert (done.status, done.attempts) == ("done", 1)
    assert (queued.status, queued.attempts, queued.last_error) == ("queued", 0, "bye")
