"""Faults inside a job: a full disk at checkpoint time and a CUDA device fault, in real worker
processes (tests/fault_worker.py raises the device fault; the disk is a real 3 MB tmpfs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_stall import fault_worker
from test_worker import checkpoints, enqueue, jobs, scalelab, tiny_grid

from scalelab.train import checkpoint


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/work on a 3 MB tmpfs (needs root); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    work = tmp_path / "work"
    work.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(work)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield work
    subprocess.run(["umount", "-l", str(work)], check=True)


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_and_no_temp_file(
    small_disk: Path,
) -> None:
    path = small_disk / "job-1" / "latest.pt"
    checkpoint.save_atomic({"position": [1, 0], "w": torch.ones(10)}, path)
    with pytest.raises(checkpoint.DiskFull, match=f"^disk full writing checkpoint {path}; "):
        checkpoint.save_atomic({"position": [2, 0], "w": torch.zeros(2_000_000)}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt"]
    assert checkpoint.load(path)["position"] == [1, 0]


def test_a_full_disk_releases_the_job_with_the_reason_and_stops_the_worker(
    tmp_path: Path, small_disk: Path
) -> None:
    db = str(tmp_path / "runs.db")
    # B-1/Wi-512 with its LION state: ~20 MB per checkpoint, far over the 3 MB disk.
    enqueue(tiny_grid(tmp_path, models='["B-1/Wi-512"]', epochs="[1]"), db)
    args = ["run-worker", "--until-empty", "--device", "cpu", "--db", db]
    worker = scalelab(*args, "--workdir", str(small_disk))
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 3, out
    (job,) = jobs(db)
    job_dir = next(small_disk.glob("study-*/job-1"))
    reason = (
        f"disk full writing checkpoint {job_dir / 'latest.pt'}; free space (or use --workdir on "
        "another disk) and start the worker again"
    )
    assert out.strip().splitlines()[-1] == f"error: job 1 released: {reason}"
    assert (job.status, job.attempts, job.last_error) == ("queued", 0, reason)
    assert list(job_dir.iterdir()) == []  # nothing partial left to be resumed from
    # With space again, the next worker does the job; the release cost no attempt.
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    worker = scalelab(*args, "--workdir", str(small_disk))
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0, out
    (job,) = jobs(db)
    assert (job.status, job.attempts) == ("done", 1)
    assert [c.epochs for c in checkpoints(db)] == [1.0]


def test_a_cuda_device_fault_hands_the_job_back_and_stops_the_worker(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, examples="[96, 128]", epochs="[1]"), db)
    worker = fault_worker("device-fault", db, tmp_path)
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 3, out
    fault = "RuntimeError: CUDA error: device-side assert triggered"
    assert out.strip().splitlines()[-1] == (
        f"error: job 1 handed back: CUDA device fault ({fault}); this worker's CUDA context "
        "is unusable, so it stops (start a new worker)"
    )
    first, second = jobs(db)
    assert (first.status, first.attempts) == ("queued", 1)  # an attempt counted: it may recur
    assert first.last_error == f"CUDA device fault: {fault} (attempt 1; will retry)"
    assert (second.status, second.attempts) == ("queued", 0)  # never claimed by this worker
