"""The scalelab command in a real subprocess, as a user runs it: for the slow end-to-end tests
that train real sweeps (the demo, the synthetic world's tail knob)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_scalelab(*args: str, cwd: Path) -> None:
    """Run `scalelab ARGS` in ``cwd`` with its render cache there; fail with its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCALELAB_CACHE": str(cwd / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "scalelab.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
