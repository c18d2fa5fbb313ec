"""benchmarks/gpu_check.sh: the GPU check runs end to end on a CPU (`--device cpu --quick`), so
that the one short GPU session it is written for never finds it broken."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def run(args: list[str], tmp_path: Path, python: str = sys.executable, **env: str):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=os.environ | {"PYTHON": python, "GPU_CHECK_WHEELS": str(tmp_path / "wheels"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_cpu_run_measures_every_section(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = run(["--device", "cpu", "--quick", "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "gpu_check.json").read_text())
    for section in ("mfu", "worker", "loader", "probes"):
        assert results[section]["ok"] is True, results[section]
    rows = results["mfu"]["rows"]
    assert [(r["model"], r["precision"]) for r in rows] == [
        ("B-2/Wi-128", "tf32"),
        ("B-2/Wi-128", "bf16"),
    ]
    assert all(r["mfu"] > 0 and r["images_per_s"] > 0 for r in rows)
    worker = results["worker"]
    # One checkpoint per T of the grid (1 and 2), each probed and recorded in the database.
    assert worker["checkpoint_files"] >= 2
    assert len(worker["probe_errors"]) == 2
    assert all(0 <= e <= 1 for e in worker["probe_errors"])
    assert worker["targets"] == ["synthetic-cifar10", "upstream"]
    loader = results["loader"]
    assert loader["consumption"] == rows[-1]["images_per_s"]
    assert set(loader["ratio"]) == {"in memory", "memmap"}
    assert set(results["probes"]) - {"ok", "section_seconds"} == {"ridge cpu", "lion cpu"}
    assert all(math.isfinite(v["error"]) for k, v in results["probes"].items() if " " in k)
    text = (out / "gpu_check.md").read_text()
    assert text.startswith("## GPU check (CPU)\n")
    assert "`benchmarks/gpu_check.sh --device cpu --quick`" in text
    assert "(--quick: targets not judged on these sizes)" in text


def test_unknown_argument_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    done = run(["--fast", "--out", str(tmp_path / "results")], tmp_path)
    assert done.returncode == 2
    assert done.stderr == "gpu_check: unknown argument --fast (use --device, --quick, --out)\n"
    assert not (tmp_path / "results").exists()


def test_missing_dependencies_without_wheels_say_how_to_fill_the_folder(tmp_path: Path) -> None:
    # An interpreter that sees no site-packages stands for the GPU machine without sqlalchemy.
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    (tmp_path / "wheels").mkdir()
    done = run(["--device", "cpu", "--quick", "--out", str(tmp_path / "r")], tmp_path, str(bare))
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu_check: cannot install sqlalchemy alembic ")
    assert last.endswith(
        f"from {tmp_path / 'wheels'}; fill it with benchmarks/fill_wheels.sh "
        + last.split("cannot install ", 1)[1].split(" from ", 1)[0]
        + " (on a machine with network access)"
    )
    assert not (tmp_path / "r").exists()
