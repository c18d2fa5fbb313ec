"""A job stuck in its loader cannot hold its job: real worker processes with a blocking loader.

tests/fault_worker.py wraps the training loader so it blocks forever after two batches, the
way FFCV's Queue.get did when its worker thread died (issue 12).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_worker import enqueue, jobs, tiny_grid

FAULT_WORKER = str(Path(__file__).with_name("fault_worker.py"))


def fault_worker(fault: str, db: str, tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, FAULT_WORKER, fault, "--until-empty", "--device", "cpu", "--db", db]
        + ["--workdir", str(tmp_path / "work"), *args],
        env={**os.environ, "SCALELAB_WORKERS_PER_HOST": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(worker: subprocess.Popen, text: str, timeout_s: float = 120) -> None:
    deadline, seen = time.time() + timeout_s, []
    while text not in (line := worker.stdout.readline()):
        seen.append(line)
        assert time.time() < deadline and worker.poll() is None, "".join(seen)


def blocked_job(tmp_path: Path) -> str:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, examples="[2000]", epochs="[5]"), db)
    return db


def test_a_stalled_job_is_released_with_the_reason_and_the_worker_exits_non_zero(
    tmp_path: Path,
) -> None:
    db = blocked_job(tmp_path)
    # 9 s: the job's set-up (data, model, loader) is not progress, and a loaded CI machine
    # may take seconds over it.
    worker = fault_worker("block", db, tmp_path, "--stall-min", "0.15")
    wait_for(worker, "loader blocked")
    blocked_at = time.monotonic()
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 3, out
    assert time.monotonic() - blocked_at < 20  # the stall limit plus a watchdog tick
    reason = (
        "stalled: no progress for 0.15 min (a blocked loader?); released by its worker's watchdog"
    )
    assert f"job 1: {reason}" in out
    (job,) = jobs(db)
    assert (job.status, job.attempts, job.last_error) == ("queued", 0, reason)


def test_sigterm_ends_a_worker_blocked_in_its_loader_within_seconds(tmp_path: Path) -> None:
    db = blocked_job(tmp_path)
    worker = fault_worker("block", db, tmp_path)  # the default stall limit: 30 min
    wait_for(worker, "loader blocked")
    worker.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 1, out
    assert time.monotonic() - signalled < 15  # STOP_GRACE_S (10 s) plus a watchdog tick
    reason = "released on SIGTERM (the job was blocked and did not reach a step)"
    (job,) = jobs(db)
    assert (job.status, job.attempts, job.last_error) == ("queued", 0, reason)
