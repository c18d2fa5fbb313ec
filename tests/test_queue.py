"""The job queue on real databases with real processes: exactly-once claims, leases, takeover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import insert_jobs

from scalelab.errors import LeaseLost
from scalelab.store.engine import open_engine
from scalelab.store.queue import claim, complete, fail, heartbeat, release, requeue
from scalelab.store.results import CheckpointMetrics, record_checkpoint, stored_checkpoints
from scalelab.store.status import queue_status

CLAIMANT = str(Path(__file__).with_name("queue_claimant.py"))


def _claimants(db: str, tmp_path: Path, n: int, *extra: str) -> list[subprocess.Popen]:
    start = time.time() + 1.5  # all start claiming at once, after their imports
    return [
        subprocess.Popen(
            [
                sys.executable,
                CLAIMANT,
                db,
                str(tmp_path / f"claims{i}.txt"),
                "--start-at",
                str(start),
                *extra,
            ]
        )
        for i in range(n)
    ]


def _claimed(tmp_path: Path) -> list[int]:
    ids = []
    for path in tmp_path.glob("claims*.txt"):
        ids += [int(line.split()[0]) for line in path.read_text().splitlines()]
    return ids


def test_eight_processes_claim_every_job_exactly_once(db_url: str, tmp_path: Path) -> None:
    insert_jobs(db_url, 400)
    procs = _claimants(db_url, tmp_path, 8)
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    claimed = _claimed(tmp_path)
    assert sorted(claimed) == list(range(1, 401))
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert queue_status(open_engine(db_url)).counts["done"] == 400


def test_killed_claimant_loses_its_job_after_lease_expiry(db_url: str, tmp_path: Path) -> None:
    insert_jobs(db_url, 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            CLAIMANT,
            db_url,
            str(tmp_path / "claims0.txt"),
            "--hold-s",
            "60",
            "--lease-s",
            "4",  # long enough that a slow, loaded host still sees it live right after the kill
        ]
    )
    deadline = time.time() + 60
    while not (tmp_path / "claims0.txt").exists() or not _claimed(tmp_path):
        assert time.time() < deadline, "the holder never claimed"
        time.sleep(0.05)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    engine = open_engine(db_url)
    assert claim(engine, "other") is None  # the lease has not expired yet
    time.sleep(4.2)
    lease = claim(engine, "other")
    assert lease is not None and lease.job_id == 1 and lease.attempt == 2
    st = queue_status(engine)
    assert st.running[0].worker == "other"


def test_stale_lease_cannot_write_over_the_new_owner(db_url: str) -> None:
    insert_jobs(db_url, 1)
    engine = open_engine(db_url)
    old = claim(engine, "old", lease_s=0.05)
    time.sleep(0.1)
    new = claim(engine, "new", lease_s=60)
    assert old is not None and new is not None and new.token == old.token + 1
    metrics = CheckpointMetrics(epochs=1, flops=1e3, compute=3e4, upstream_error=0.5)
    with pytest.raises(LeaseLost, match="job 1: lease lost"):
        heartbeat(engine, old)
    with pytest.raises(LeaseLost):
        record_checkpoint(engine, old, metrics, [], device="cpu", lease_s=60)
    with pytest.raises(LeaseLost):
        complete(engine, old)
    assert stored_checkpoints(engine, 1) == []  # nothing half-written by the stale worker
    record_checkpoint(engine, new, metrics, [], device="cpu", lease_s=60)
    complete(engine, new)
    assert [c.upstream_error for c in stored_checkpoints(engine, 1)] == [0.5]
    assert queue_status(engine).counts["done"] == 1


def test_attempts_are_capped_then_failed_with_reason(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    insert_jobs(db, 1, max_attempts=2)
    engine = open_engine(db)
    for _ in range(2):
        assert claim(engine, "w", lease_s=0.01) is not None
        time.sleep(0.03)
    assert claim(engine, "w") is None
    st = queue_status(engine)
    assert st.counts["failed"] == 1
    assert st.failed[0].error.startswith("lease expired on the last allowed attempt")


def test_release_fail_and_requeue(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    insert_jobs(db, 2)
    engine = open_engine(db)
    first = claim(engine, "w")
    release(engine, first, "SIGTERM")
    again = claim(engine, "w")
    assert again.job_id == first.job_id and again.attempt == 1  # a release costs no attempt
    fail(engine, again, "RuntimeError: boom")
    second = claim(engine, "w")
    complete(engine, second)
    assert claim(engine, "w") is None
    assert queue_status(engine).failed[0].error == "RuntimeError: boom"
    assert requeue(engine, failed=True).requeued == [first.job_id]
    assert claim(engine, "w").job_id == first.job_id


def test_requeue_refuses_a_live_lease(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    insert_jobs(db, 1)
    engine = open_engine(db)
    claim(engine, "w", lease_s=60)
    from scalelab.errors import ScalelabError

    with pytest.raises(ScalelabError, match="job 1 is running on w with a live lease"):
        requeue(engine, job_ids=[1])


def test_status_shows_the_last_line_of_an_error_even_a_blank_one(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    insert_jobs(db, 2)
    engine = open_engine(db)
    fail(engine, claim(engine, "w"), "Traceback (most recent call last):\n  ...\nValueError: x\n")
    fail(engine, claim(engine, "w"), "  \n")
    assert [f.error for f in queue_status(engine).failed] == ["ValueError: x", ""]
