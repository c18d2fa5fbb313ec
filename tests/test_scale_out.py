"""Scale-out on a real PostgreSQL server: 8 workers drain a grid, kill -9 and resume, and the
SLURM launch path through submitit (its in-process 'debug' cluster stands in for SLURM)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from test_worker import checkpoints, drain_sixteen_jobs, enqueue, jobs, scalelab, tiny_grid

from scalelab.launch import LaunchError, LaunchOptions, launch, launch_slurm

pytestmark = pytest.mark.postgres


def test_eight_workers_drain_a_grid_on_postgres_exactly_once(tmp_path: Path, pg_url: str) -> None:
    drain_sixteen_jobs(pg_url, tmp_path, workers=8)


def test_kill9_then_resume_on_postgres(tmp_path: Path, pg_url: str) -> None:
    enqueue(tiny_grid(tmp_path, examples="[320]", epochs="[1, 2, 3]"), pg_url)
    common = [
        "--until-empty",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--db",
        pg_url,
        "--workdir",
        str(tmp_path / "work"),
    ]
    victim = scalelab("run-worker", *common, "--lease-min", "0.03")
    deadline = time.time() + 120
    while not checkpoints(pg_url):
        assert time.time() < deadline and victim.poll() is None, "worker never reached T=1"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    time.sleep(2.0)
    rescuer = scalelab("run-worker", *common)
    assert rescuer.wait(timeout=300) == 0, rescuer.stdout.read()
    (job,) = jobs(pg_url)
    assert job.status == "done" and job.attempts == 2
    assert [c.epochs for c in checkpoints(pg_url)] == [1, 2, 3]


def test_slurm_array_through_submitit(tmp_path: Path, pg_url: str) -> None:
    """submitit's 'debug' cluster runs the array tasks in-process: the same code path as SLURM."""
    enqueue(tiny_grid(tmp_path, examples="[32, 64]", epochs="[1]"), pg_url)
    options = LaunchOptions(
        workers=2,
        executor="slurm",
        device="cpu",
        workdir=tmp_path / "work",
        partition="debug",
        time_min=10,
        log_dir=tmp_path / "logs",
    )
    ids = launch_slurm(pg_url, options, cluster="debug")
    assert len(ids) == 2
    assert {j.status for j in jobs(pg_url)} == {"done"}


def test_slurm_refuses_sqlite_and_needs_a_partition(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path), db)
    with pytest.raises(LaunchError, match="cannot share a SQLite file"):
        launch(db, LaunchOptions(workers=2, executor="slurm", partition="gpu"))
    with pytest.raises(LaunchError, match=r"--executor slurm needs --partition NAME"):
        launch_slurm(db, LaunchOptions(workers=2, executor="slurm"))


def test_import_fit_plot_export_status_on_postgres(tmp_path: Path, pg_url: str) -> None:
    """The analysis commands read and write a PostgreSQL study like a SQLite one."""
    from typer.testing import CliRunner

    from scalelab.analysis.synthetic import synthetic_runs
    from scalelab.cli import app

    runner = CliRunner()
    csv = tmp_path / "results.csv"
    columns = ["model", "params", "flops", "examples", "epochs", "seed", "target", "error"]
    synthetic_runs(seeds=(0,), target="cifar10")[columns].to_csv(csv, index=False)
    steps = [
        ["import", str(csv)],
        ["fit", "--target", "cifar10", "--bootstrap", "20"],
        ["plan", "--target", "cifar10", "--budget", "1e18"],
        ["plot", "fig1", "--target", "cifar10", "--out", str(tmp_path / "plots")],
        ["export", "--out", str(tmp_path / "out.csv")],
        ["status", "--json"],
    ]
    for args in steps:
        result = runner.invoke(app, [*args, "--db", pg_url])
        assert result.exit_code == 0, (args, result.output)
    assert (tmp_path / "plots" / "fig1_cifar10.png").exists()
    assert (tmp_path / "out.csv").read_text().count("\n") == len(synthetic_runs(seeds=(0,))) + 1
