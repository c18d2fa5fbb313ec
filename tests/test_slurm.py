"""Workers as a real SLURM job array on the one-node cluster of `make services`, on PostgreSQL.

sbatch, srun, scancel and requeue are SLURM's own. The cluster keeps accounting in slurmdbd,
so `sacct` shows each run of a task: a requeue leaves a REQUEUED record before the next run's
(`--duplicates`). What sacct cannot say (which array task claimed a job: a running task's own
job id) is read from slurmctld with `scontrol show job`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from test_worker import checkpoints, enqueue, jobs, scalelab, tiny_grid

from scalelab.launch import LaunchError, LaunchOptions, launch, launch_slurm

pytestmark = pytest.mark.postgres


def launch_array(db: str, tmp_path: Path, partition: str, workers: int, **extra: int) -> list[str]:
    """Submit `workers` array tasks, one CPU each; return their SLURM ids ("123_0", ...)."""
    options = LaunchOptions(
        workers=workers,
        executor="slurm",
        device="cpu",
        workdir=tmp_path / "work",
        partition=partition,
        gpus_per_worker=0,
        cpus_per_worker=1,
        time_min=30,
        log_dir=tmp_path / "logs",
        **extra,
    )
    return launch(db, options)


def task(task_id: str) -> dict[str, str]:
    """slurmctld's record of one array task: JobState, ExitCode, Restarts, ..."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", task_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def runs(task_id: str) -> list[tuple[str, str]]:
    """sacct's records of one array task, one per run, oldest first: (State, ExitCode)."""
    out = subprocess.run(
        ["sacct", "-j", task_id, "-n", "-P", "-X", "--duplicates", "-o", "State,ExitCode"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [tuple(line.split("|")) for line in out.splitlines()]  # type: ignore[misc]


def states(task_id: str) -> list[str]:
    return [state for state, _ in runs(task_id)]


def ended(task_id: str) -> bool:
    """sacct has the task's last run as ended (it lags slurmctld by a second or two)."""
    last = states(task_id)[-1:]
    return bool(last) and last[0].split()[0] in FINAL  # "CANCELLED by 0"


def log(tmp_path: Path, task_id: str) -> str:
    """The task's submitit logs (stdout, then stderr)."""
    paths = sorted((tmp_path / "logs").glob(f"{task_id}_*log.*"), key=lambda p: p.suffix)
    return "".join(path.read_text() for path in reversed(paths))  # .out before .err


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while not check():
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


FINAL = ("COMPLETED", "FAILED", "CANCELLED")


def finished(ids: list[str]) -> bool:
    return all(task(i)["JobState"] in FINAL for i in ids)


def results(db: str) -> list[tuple[int, float, float | None, float | None]]:
    return [(c.job_id, c.epochs, c.train_loss, c.upstream_error) for c in checkpoints(db)]


def reference(grid: Path, tmp_path: Path) -> list[tuple[int, float, float | None, float | None]]:
    """The same grid drained by one local worker (one thread, as each task) on SQLite."""
    db = str(tmp_path / "reference.db")
    enqueue(grid, db)
    worker = scalelab(
        "run-worker", "--until-empty", "--device", "cpu", "--threads", "1", "--db", db,
        "--workdir", str(tmp_path / "reference"),
    )  # fmt: skip
    assert worker.wait(timeout=300) == 0, worker.stdout.read()
    return results(db)


def test_an_array_of_three_drains_a_grid_once_as_one_worker_would(
    tmp_path: Path, pg_url: str, slurm_partition: str
) -> None:
    grid = tiny_grid(tmp_path, examples="[32, 64, 96]", seeds="[0, 1]", epochs="[1, 2]")
    enqueue(grid, pg_url)
    ids = launch_array(pg_url, tmp_path, slurm_partition, workers=3)
    assert len(ids) == 3 and len({i.split("_")[0] for i in ids}) == 1  # one array of 3
    expected = reference(grid, tmp_path)
    wait_for(lambda: finished(ids), "the array to finish")
    assert [task(i)["JobState"] for i in ids] == ["COMPLETED"] * 3, [log(tmp_path, i) for i in ids]
    assert {(j.status, j.attempts) for j in jobs(pg_url)} == {("done", 1)}
    ran_in = {j.slurm_job_id for j in jobs(pg_url)}
    assert ran_in <= {task(i)["JobId"] for i in ids}  # each job claimed by an array task
    assert results(pg_url) == expected


def test_scancel_of_a_task_mid_job_hands_the_job_to_another_task(
    tmp_path: Path, pg_url: str, slurm_partition: str
) -> None:
    # T = 20 after T = 1, 2: the job is still training when the scancel lands, even on a loaded
    # machine (with T = 3 the victim could finish its job between the checkpoint and the signal).
    grid = tiny_grid(tmp_path, examples="[1000]", seeds="[0, 1, 2]", epochs="[1, 2, 20]")
    enqueue(grid, pg_url)
    ids = launch_array(pg_url, tmp_path, slurm_partition, workers=2)
    # The first job to reach T=1, and the task that trains it.
    wait_for(lambda: checkpoints(pg_url), "a task to checkpoint T=1")
    by_job_id = {task(i)["JobId"]: i for i in ids}  # running tasks have their own ids
    (victim_job,) = [j for j in jobs(pg_url) if j.id == checkpoints(pg_url)[0].job_id]
    victim = by_job_id[victim_job.slurm_job_id]
    subprocess.run(["scancel", victim], check=True)
    expected = reference(grid, tmp_path)
    wait_for(lambda: finished(ids), "the array to finish", timeout_s=180)

    assert task(victim)["JobState"] == "CANCELLED"
    (rescuer,) = set(ids) - {victim}
    assert task(rescuer)["JobState"] == "COMPLETED", log(tmp_path, rescuer)
    assert "released on SIGTERM" in log(tmp_path, victim)
    resumed = next(j for j in jobs(pg_url) if j.id == victim_job.id)
    assert resumed.status == "done" and resumed.slurm_job_id == task(rescuer)["JobId"]
    # Resumed from its checkpoint, not from scratch: the rescuer never trained its epoch 1.
    rescued = [ln for ln in log(tmp_path, rescuer).splitlines() if f"job {victim_job.id} " in ln]
    assert any("epoch 20/20" in ln for ln in rescued)
    assert not any("epoch 1/20" in ln for ln in rescued)
    assert {j.status for j in jobs(pg_url)} == {"done"}
    assert results(pg_url) == expected


def test_usr2_and_term_checkpoint_release_and_requeue_the_task_up_to_the_cap(
    tmp_path: Path, pg_url: str, slurm_partition: str
) -> None:
    # Trains far longer than the test runs (2,000 images an epoch take about 0.1 s): the
    # signals end it, never the last epoch.
    enqueue(tiny_grid(tmp_path, examples="[2000]", epochs="[500]"), pg_url)
    (task_id,) = launch_array(pg_url, tmp_path, slurm_partition, workers=1, max_requeues=1)

    def training(attempt: int) -> bool:  # claimed: the worker's signal handlers are in place
        (job,) = jobs(pg_url)
        return job.status == "running" and job.attempts == attempt

    def signal_and_wait_for_release(name: str) -> None:
        sent = time.time()
        subprocess.run(["scancel", f"--signal={name}", task_id], check=True)
        wait_for(lambda: jobs(pg_url)[0].status == "queued", f"the job released on {name}")
        assert time.time() - sent < 10  # the step ends, a checkpoint, a release: seconds
        (job,) = jobs(pg_url)
        assert job.last_error == f"released on SIG{name}" and job.attempts == 0
        assert list((tmp_path / "work").glob("study-*/job-1/latest.pt"))

    wait_for(lambda: training(attempt=1), "the task to train")
    signal_and_wait_for_release("USR2")
    # sacct records the requeue as soon as slurmctld reports it (a second or two).
    wait_for(lambda: states(task_id) == ["REQUEUED", "PENDING"], "sacct to show the requeue")
    # A requeued job waits for a begin time SLURM sets about two minutes ahead: skip the wait.
    subprocess.run(["scontrol", "update", f"JobId={task_id}", "StartTime=now"], check=True)
    wait_for(lambda: training(attempt=1), "the requeued task to train again")
    assert "requeued 1x" in log(tmp_path, task_id)

    signal_and_wait_for_release("TERM")  # what SLURM sends at a time limit
    wait_for(lambda: ended(task_id), "the task to end at its requeue cap")
    (requeued, failed) = runs(task_id)  # one requeue, then the run that ended at the cap
    assert requeued[0] == "REQUEUED" and failed[0] == "FAILED" and failed[1] != "0:0", runs(task_id)
    assert "not requeued, 1 requeues already (--max-requeues 1)" in log(tmp_path, task_id)
    (job,) = jobs(pg_url)
    assert job.status == "queued"  # nothing lost: the next worker resumes from latest.pt


def test_a_task_whose_database_vanished_fails_with_a_one_line_reason(
    tmp_path: Path, pg_url: str, slurm_partition: str
) -> None:
    enqueue(tiny_grid(tmp_path), pg_url)
    # Hold new tasks back (a DOWN partition queues them) while the database goes away.
    down = ["scontrol", "update", f"PartitionName={slurm_partition}"]
    subprocess.run([*down, "State=DOWN"], check=True)
    try:
        (task_id,) = launch_array(pg_url, tmp_path, slurm_partition, workers=1)
        admin = create_engine(pg_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{pg_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()
    finally:
        subprocess.run([*down, "State=UP"], check=True)
    wait_for(lambda: ended(task_id), "the task to end")
    ((state, exit_code),) = runs(task_id)
    assert state == "FAILED" and exit_code != "0:0", log(tmp_path, task_id)
    (line,) = [ln for ln in log(tmp_path, task_id).splitlines() if "scalelab worker failed" in ln]
    assert line.startswith("scalelab worker failed: cannot reach database postgresql")
    assert 'database "' in line and "does not exist; check --db / SCALELAB_DB" in line


def test_a_negative_requeue_cap_is_refused_before_anything_is_submitted(tmp_path: Path) -> None:
    options = LaunchOptions(workers=1, executor="slurm", partition="main", max_requeues=-1)
    with pytest.raises(LaunchError) as refused:
        launch_slurm(str(tmp_path / "runs.db"), options)
    assert str(refused.value) == "--max-requeues must be ≥ 0, got -1"
