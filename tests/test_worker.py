"""The training worker through the real queue, real SQLite files and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.flops import model_cost
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.schema import Checkpoint, Job, Provenance

runner = CliRunner()

TINY = """
name = "tiny"
dataset = "synthetic"
resolution = 16
models = {models}
examples = {examples}
epochs = {epochs}
seeds = {seeds}
baseline = {baseline}

[train]
batch_size = 32
lr = {lr}
optimizer = "{optimizer}"
heldout_examples = 200

[probe]
targets = {targets}
"""


def tiny_grid(tmp_path: Path, **overrides: object) -> Path:
    values = {
        "models": '["B-1/Wi-16"]',
        "examples": "[96]",
        "epochs": "[1, 2]",
        "seeds": "[0]",
        "baseline": "false",
        "lr": "1e-3",
        "optimizer": "lion",
        "targets": "[]",
    }
    values.update({k: str(v) for k, v in overrides.items()})
    path = tmp_path / "grid.toml"
    path.write_text(TINY.format(**values))
    return path


def scalelab(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scalelab.cli", *args],
        env={**os.environ, "SCALELAB_WORKERS_PER_HOST": "2", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def enqueue(grid: Path, db: str) -> None:
    result = runner.invoke(app, ["enqueue", str(grid), "--db", db])
    assert result.exit_code == 0, result.output


def jobs(db: str) -> list[Job]:
    with session_scope(open_engine(db), write=False) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def checkpoints(db: str) -> list[Checkpoint]:
    with session_scope(open_engine(db), write=False) as session:
        return list(
            session.scalars(select(Checkpoint).order_by(Checkpoint.job_id, Checkpoint.epochs))
        )


def run_worker_here(db: str, tmp_path: Path) -> object:
    """One worker in this process, through the CLI, until the queue is empty."""
    args = ["run-worker", "--until-empty", "--device", "cpu", "--db", db]
    return runner.invoke(app, [*args, "--workdir", str(tmp_path / "work")])


def drain_sixteen_jobs(db: str, tmp_path: Path, workers: int) -> None:
    """`launch` K local workers on a 16-job grid; every job is done, each claimed once."""
    grid = tiny_grid(
        tmp_path,
        models='["B-1/Wi-16", "B-1/Wi-32"]',
        examples="[32, 64, 96, 128]",
        seeds="[0, 1]",
        epochs="[1]",
    )
    enqueue(grid, db)
    launcher = scalelab(
        "launch",
        "--executor",
        "local",
        "--workers",
        str(workers),
        "--device",
        "cpu",
        "--db",
        db,
        "--workdir",
        str(tmp_path / "work"),
    )
    out, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, out
    all_jobs = jobs(db)
    assert len(all_jobs) == 16 and {j.status for j in all_jobs} == {"done"}
    # Each claimed exactly once; on failure, say which job went round twice and why.
    repeated = [(j.id, j.attempts, j.last_error) for j in all_jobs if j.attempts != 1]
    assert not repeated, f"{repeated}\n{out}"
    assert len(checkpoints(db)) == 16
    assert len({j.worker_id for j in all_jobs}) >= 2  # really shared between processes


def test_tiny_job_end_to_end(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, baseline="true", targets='["synthetic-cifar10"]'), db)
    result = run_worker_here(db, tmp_path)
    assert result.exit_code == 0, result.output
    assert "worker finished: 1 done, 0 failed, 0 diverged, 0 released" in result.output
    (job,) = jobs(db)
    assert job.status == "done" and job.attempts == 1
    flops = model_cost("B-1/Wi-16", 1000, 16).flops
    ckpts = checkpoints(db)
    assert [c.epochs for c in ckpts] == [0, 1, 2]
    for c in ckpts:
        assert c.flop_convention == "mac"
        assert c.compute == flops * 3 * 96 * c.epochs  # Eq. 4
        assert 0 <= c.upstream_error <= 1
        assert Path(c.path).exists()
    assert ckpts[0].train_loss is None and ckpts[2].train_loss > 0
    assert ckpts[2].achieved_flops_per_s > 0
    with session_scope(open_engine(db), write=False) as session:
        prov = session.scalars(select(Provenance)).one()
        assert prov.device == "cpu" and prov.torch_version
    from scalelab import load_runs

    runs = load_runs(db)
    probes = runs[runs.target == "synthetic-cifar10"]
    assert len(probes) == 3 and probes["error"].between(0, 1).all()
    assert set(runs["target"]) == {"synthetic-cifar10", "upstream"}

    # Re-probing a stored checkpoint reproduces the stored error, and replaces that row.
    stored = probes.set_index("epochs")["error"]
    reprobe = runner.invoke(
        app,
        [
            "probe",
            "--job",
            "1",
            "--target",
            "synthetic-cifar10",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--db",
            db,
            "--json",
        ],
    )
    assert reprobe.exit_code == 0, reprobe.output
    (again,) = json.loads(reprobe.output)
    assert again["epochs"] == 2 and again["error"] == stored[2.0]
    assert len(load_runs(db)) == len(runs)


def _final_metrics(db: str) -> list[tuple[float, float | None, float | None]]:
    return [(c.epochs, c.train_loss, c.upstream_error) for c in checkpoints(db)]


def test_kill9_mid_job_then_reclaim_resumes_to_the_identical_result(tmp_path: Path) -> None:
    grid = tiny_grid(tmp_path, examples="[320]", epochs="[1, 2, 3]")
    reference, killed = str(tmp_path / "ref.db"), str(tmp_path / "killed.db")
    for db in (reference, killed):
        enqueue(grid, db)
    common = ["--until-empty", "--device", "cpu", "--threads", "1"]
    ref = scalelab("run-worker", *common, "--db", reference, "--workdir", str(tmp_path / "w1"))
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    victim = scalelab(
        "run-worker",
        *common,
        "--db",
        killed,
        "--workdir",
        str(tmp_path / "w2"),
        "--lease-min",
        "0.03",
        "--checkpoint-min",
        "0.001",
    )
    deadline = time.time() + 120
    while not any(c.epochs == 1 for c in checkpoints(killed)):
        assert time.time() < deadline and victim.poll() is None, "worker never reached T=1"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert jobs(killed)[0].status == "running"  # nobody released it: the lease must expire
    time.sleep(2.0)
    rescuer = scalelab("run-worker", *common, "--db", killed, "--workdir", str(tmp_path / "w2"))
    assert rescuer.wait(timeout=300) == 0, rescuer.stdout.read()
    (job,) = jobs(killed)
    assert job.status == "done" and job.attempts == 2
    assert "expired" in (job.last_error or "") or job.last_error is None
    assert _final_metrics(killed) == _final_metrics(reference)


def test_sigterm_checkpoints_and_releases_the_job(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, examples="[2000]", epochs="[50]"), db)
    worker = scalelab(
        "run-worker",
        "--until-empty",
        "--device",
        "cpu",
        "--db",
        db,
        "--workdir",
        str(tmp_path / "work"),
    )
    deadline = time.time() + 120
    while "epoch 1/50" not in (out := worker.stdout.readline()):
        assert time.time() < deadline and worker.poll() is None, out
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0
    (job,) = jobs(db)
    assert job.status == "queued" and job.attempts == 0
    assert job.last_error == "released on SIGTERM"
    assert list((tmp_path / "work").glob("study-*/job-1/latest.pt"))


def test_nan_loss_marks_the_job_diverged(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, optimizer="sgd", lr="1e30"), db)
    result = run_worker_here(db, tmp_path)
    assert result.exit_code == 0, result.output
    (job,) = jobs(db)
    assert job.status == "diverged"
    assert job.last_error.startswith(
        "loss became nan at epoch 1, step "
    ) or job.last_error.startswith("loss became inf at epoch 1, step ")
    assert job.last_error.endswith("; lower the learning rate")
    status = runner.invoke(app, ["status", "--db", db])
    assert "diverged" in status.output


def test_four_workers_drain_sixteen_jobs_exactly_once(tmp_path: Path) -> None:
    drain_sixteen_jobs(str(tmp_path / "runs.db"), tmp_path, workers=4)


def test_a_new_t_extends_a_finished_job_from_its_checkpoint(tmp_path: Path) -> None:
    direct, extended = str(tmp_path / "direct.db"), str(tmp_path / "extended.db")
    enqueue(tiny_grid(tmp_path, epochs="[1, 2, 3]"), direct)
    assert run_worker_here(direct, tmp_path / "a").exit_code == 0
    enqueue(tiny_grid(tmp_path, epochs="[1, 2]"), extended)
    assert run_worker_here(extended, tmp_path / "b").exit_code == 0
    first = {c.epochs: c.id for c in checkpoints(extended)}
    result = runner.invoke(
        app, ["enqueue", str(tiny_grid(tmp_path, epochs="[1, 2, 3]")), "--db", extended]
    )
    assert "added 0 jobs, 1 already present (1 extended with new epochs)" in result.output
    assert jobs(extended)[0].status == "queued"
    assert run_worker_here(extended, tmp_path / "b").exit_code == 0
    after = checkpoints(extended)
    assert [c.epochs for c in after] == [1, 2, 3]
    assert {c.epochs: c.id for c in after if c.epochs < 3} == first  # T=1, 2 kept, not redone
    assert _final_metrics(extended) == _final_metrics(direct)  # resumed from T=2 exactly
