"""Leases are measured on the database server's clock: a worker whose own clock is 5 minutes
off neither loses its live lease nor takes another's (real worker process, real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import signal

import pytest
from sqlalchemy import text
from test_stall import fault_worker, wait_for
from test_worker import enqueue, jobs, tiny_grid

from scalelab.store import queue
from scalelab.store.engine import open_engine

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(("worker_skew_s", "claimant_skew_s"), [(-300, 0), (0, 300)])
def test_a_live_lease_survives_clock_skew_between_workers(
    pg_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch, worker_skew_s: int, claimant_skew_s: int
) -> None:
    # Trains far longer than the test runs (2,000 images an epoch take about 0.1 s): SIGTERM
    # ends it, never the last epoch.
    enqueue(tiny_grid(tmp_path, examples="[2000]", epochs="[500]"), pg_url)
    worker = fault_worker(f"skew={worker_skew_s}", pg_url, tmp_path, "--lease-min", "1")
    try:
        wait_for(worker, "epoch 1/500")
        # Another worker, its own clock skewed, tries to claim while the first one trains.
        monkeypatch.setattr(
            queue,
            "utcnow",
            lambda: (
                dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=claimant_skew_s)
            ),
        )
        engine = open_engine(pg_url)
        assert queue.claim(engine, "other", lease_s=60) is None
        with engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT extract(epoch FROM lease_expires_at - "
                    "(clock_timestamp() AT TIME ZONE 'UTC')) FROM jobs"
                )
            ).scalar_one()
        assert 0 < left <= 60  # a one-minute lease, on the server's clock
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    (job,) = jobs(pg_url)
    assert (job.status, job.attempts, job.last_error) == ("queued", 0, "released on SIGTERM")
