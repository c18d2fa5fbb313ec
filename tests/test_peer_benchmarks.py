"""The peer benchmarks (benchmarks/bench_peer_*.py) in --quick mode: each runs as `make bench`
runs it, against the real peer package, and scalelab agrees with the peer where it must.

The peers come from the `bench` extra (pip install -e '.[bench]'); results go to a temporary
folder ($SCALELAB_BENCH_RESULTS), never over the committed ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def quick(name: str, tmp_path: Path, *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"bench_{name}.py"), "--quick", *extra],
        cwd=BENCHMARKS,
        env=os.environ | {"SCALELAB_BENCH_RESULTS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return (tmp_path / f"{name}.md").read_text()


def table_row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def test_fit_agrees_with_the_chinchilla_package(tmp_path: Path) -> None:
    pytest.importorskip("chinchilla", reason="the bench extra is not installed")
    text = quick("peer_fit", tmp_path)
    assert text.startswith("## Peer: parametric fit against the `chinchilla` package\n")
    worst = re.search(r"Largest relative parameter difference: \*\*([0-9.]+)%\*\*", text)
    # Even from the peer's 32 starts, both reach the same optimum of the same objective.
    assert worst is not None and float(worst.group(1)) < 1.0, text
    assert len(re.findall(r"\*\*[0-9.]+×\*\* faster", text)) == 2, text


def test_probes_agree_with_scikit_learn(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the bench extra is not installed")
    text = quick("peer_probe", tmp_path)
    same = table_row(text, "ridge, same λ")
    # At the same λ, scalelab's closed form and scikit-learn's solve give the same classifier.
    assert abs(float(same[-1])) <= 0.001, same
    logreg = table_row(text, "logreg")
    assert abs(float(logreg[-1])) <= 0.01, logreg  # the same objective, 100 L-BFGS steps


def test_training_step_runs_beside_the_authors_loop(tmp_path: Path) -> None:
    text = quick("peer_train", tmp_path)
    row = table_row(text, "B-2/Wi-128")
    assert float(row[1].replace(",", "")) > 0 and float(row[2].replace(",", "")) > 0


@pytest.mark.slow  # ~30 s: four runs of real worker processes lined up to start together
def test_queue_claims_each_job_once_beside_optuna(tmp_path: Path) -> None:
    pytest.importorskip("optuna", reason="the bench extra is not installed")
    text = quick("peer_queue", tmp_path, "--no-postgres")
    rows = {
        cells[1]: cells
        for line in text.splitlines()
        if (cells := [c.strip() for c in line.strip().strip("|").split("|")])[0] == "sqlite"
    }
    assert set(rows) == {"1", "8"}, text
    for row in rows.values():
        # scalelab: each of the 50 jobs claimed exactly once and no worker crashed.
        assert row[5] == "50/50 / 0 / 0", row
        assert float(row[2].replace(",", "")) > 0 and float(row[3].replace(",", "")) > 0
