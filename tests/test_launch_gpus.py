"""`launch --executor local` deals GPUs to its workers round-robin via CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scalelab.launch import LaunchOptions, launch_local, local_gpus
from scalelab.store.engine import open_engine


def test_gpus_are_dealt_round_robin():
    assert local_gpus(5, "auto", 2, None) == ["0", "1", "0", "1", "0"]
    assert local_gpus(3, "cuda", 4, None) == ["0", "1", "2"]
    # Only the GPUs this launcher may see, in its numbering of them.
    assert local_gpus(4, "auto", 2, "3,5") == ["3", "5", "3", "5"]


def test_no_gpus_or_an_explicit_device_leaves_the_environment_alone():
    assert local_gpus(2, "auto", 0, None) == [None, None]
    assert local_gpus(2, "cpu", 4, None) == [None, None]
    assert local_gpus(2, "cuda:1", 4, None) == [None, None]


def test_each_local_worker_process_sees_its_own_gpu(tmp_path: Path, monkeypatch, capfd):
    """Three real processes on two (faked) GPUs: each reports the CUDA_VISIBLE_DEVICES it got."""
    db = str(tmp_path / "runs.db")
    open_engine(db)  # an empty study
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    real_popen = subprocess.Popen
    commands = []

    def report_gpu(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        # The worker's command as launch built it, then a process that exits 10 + its GPU.
        commands.append(cmd)
        probe = "import os, sys; sys.exit(10 + int(os.environ['CUDA_VISIBLE_DEVICES']))"
        return real_popen([sys.executable, "-c", probe], env=env)

    monkeypatch.setattr(subprocess, "Popen", report_gpu)
    codes = launch_local(db, LaunchOptions(workers=3, device="auto"))
    assert codes == [10, 11, 10]
    assert all(cmd[2:5] == ["scalelab.cli", "run-worker", "--device"] for cmd in commands)
    out = capfd.readouterr().out.splitlines()
    assert out == [
        "worker 1/3: CUDA_VISIBLE_DEVICES=0",
        "worker 2/3: CUDA_VISIBLE_DEVICES=1",
        "worker 3/3: CUDA_VISIBLE_DEVICES=0",
    ]


@pytest.mark.parametrize("device", ["cpu", "cuda:1"])
def test_workers_on_a_named_device_get_no_gpu_assignment(tmp_path, monkeypatch, capfd, device):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    real_popen = subprocess.Popen
    probe = "import os, sys; sys.exit(int(os.environ['CUDA_VISIBLE_DEVICES']))"
    monkeypatch.setattr(
        subprocess, "Popen", lambda cmd, env: real_popen([sys.executable, "-c", probe], env=env)
    )
    assert launch_local(None, LaunchOptions(workers=2, device=device)) == [7, 7]
    assert capfd.readouterr().out == ""
