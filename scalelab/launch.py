"""`scalelab launch`: start K `run-worker` processes locally, or as a SLURM job array.

Every worker drains the same queue (the database given with --db, which must be PostgreSQL
for workers on several nodes) until it is empty or the worker's time is nearly up; then it
checkpoints and releases its job, so a preempted or timed-out worker loses nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import ScalelabError
from scalelab.store.engine import is_sqlite, open_engine


class LaunchError(ScalelabError):
    """Workers cannot be launched as asked."""


@dataclass(frozen=True)
class LaunchOptions:
    workers: int
    executor: str = "local"  # local | slurm
    device: str = "auto"
    until_empty: bool = True
    workdir: Path = Path("work")
    partition: str | None = None
    gpus_per_worker: int = 1
    cpus_per_worker: int | None = None
    time_min: int = 60
    array_parallelism: int | None = None
    log_dir: Path = Path("work/slurm-logs")
    max_requeues: int = 3  # SLURM: requeue a preempted or timed-out task at most this often


def worker_args(db: str | None, options: LaunchOptions) -> list[str]:
    """The `run-worker` command line of each local worker."""
    args = ["run-worker", "--device", options.device, "--workdir", str(options.workdir)]
    if options.until_empty:
        args.append("--until-empty")
    if db:
        args += ["--db", db]
    return args


def local_gpus(workers: int, device: str, gpu_count: int, visible: str | None) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES of each of K local workers (None: leave it unset).

    With --device auto or cuda, GPUs are dealt round-robin (of those already visible when
    $CUDA_VISIBLE_DEVICES is set), so each worker's cuda:0 is its own GPU rather than every
    worker landing on the first. An explicit cuda:N, or the CPU, is left as the user asked.
    """
    if device.strip().lower() not in ("auto", "cuda") or gpu_count < 1:
        return [None] * workers
    ids = [gpu.strip() for gpu in visible.split(",")] if visible else []
    ids = ids[:gpu_count] if ids else [str(index) for index in range(gpu_count)]
    return [ids[worker % len(ids)] for worker in range(workers)]


def launch_local(db: str | None, options: LaunchOptions) -> list[int]:
    """Run K workers as local processes sharing the CPU cores and GPUs; wait; return exit codes."""
    import torch

    env = {**os.environ, "SCALELAB_WORKERS_PER_HOST": str(options.workers)}
    cmd = [sys.executable, "-m", "scalelab.cli", *worker_args(db, options)]
    gpus = local_gpus(
        options.workers,
        options.device,
        torch.cuda.device_count(),
        os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
    procs = []
    for worker, gpu in enumerate(gpus, start=1):
        if gpu is not None:
            print(f"worker {worker}/{options.workers}: CUDA_VISIBLE_DEVICES={gpu}", flush=True)
        extra = {} if gpu is None else {"CUDA_VISIBLE_DEVICES": gpu}
        procs.append(subprocess.Popen(cmd, env={**env, **extra}))

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:  # each worker checkpoints and releases its job, then exits
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return [proc.wait() for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def launch_slurm(db: str | None, options: LaunchOptions, *, cluster: str = "slurm") -> list[str]:
    """Submit one SLURM job array of K workers through submitit; return the job ids.

    ``cluster="debug"`` runs the array in this process (submitit's stand-in for tests).
    """
    try:
        import submitit
    except ImportError:
        raise LaunchError(
            "the SLURM executor needs submitit: pip install 'scalelab[cluster]'"
        ) from None
    if not options.partition:
        raise LaunchError("--executor slurm needs --partition NAME (see `sinfo`)")
    if options.max_requeues < 0:
        raise LaunchError(f"--max-requeues must be ≥ 0, got {options.max_requeues}")
    from scalelab.train.slurm_entry import SlurmWorker
    from scalelab.train.worker import WorkerOptions

    cpus = options.cpus_per_worker or 8
    executor = submitit.AutoExecutor(
        folder=str(options.log_dir),
        cluster=cluster,
        slurm_max_num_timeout=options.max_requeues,  # submitit's own cap on timeout requeues
    )
    executor.update_parameters(
        slurm_partition=options.partition,
        timeout_min=options.time_min,
        gpus_per_node=options.gpus_per_worker or None,  # 0: a CPU node, no GPU asked for
        tasks_per_node=1,
        cpus_per_task=cpus,
        slurm_array_parallelism=options.array_parallelism or options.workers,
        # USR2 this long before SLURM's limit: time to checkpoint, release and requeue.
        slurm_signal_delay_s=int(60 * max(5.0, 0.1 * options.time_min)),
        name="scalelab-worker",
    )
    worker = SlurmWorker(
        db,
        WorkerOptions(
            device=options.device,
            until_empty=options.until_empty,
            workdir=options.workdir.resolve(),  # the task's directory need not be ours
            threads=cpus,  # the cores SLURM gives the task
        ),
        max_requeues=options.max_requeues,
    )
    # submitit runs each task with this interpreter (sys.executable) and sbatch passes on this
    # environment (PYTHONPATH, $SCALELAB_DB), so the node imports the same scalelab.
    jobs = executor.map_array(worker, range(options.workers))
    if cluster == "debug":
        for job in jobs:
            job.result()  # debug jobs run when their result is asked for
    return [str(job.job_id) for job in jobs]


def launch(db: str | None, options: LaunchOptions) -> list[int] | list[str]:
    if options.workers < 1:
        raise LaunchError(f"--workers must be ≥ 1, got {options.workers}")
    engine = open_engine(db, create=False)  # fail here, not in K workers, if the DB is wrong
    if options.executor == "local":
        return launch_local(db, options)
    if options.executor == "slurm":
        if is_sqlite(engine):
            raise LaunchError(
                "SLURM workers on several nodes cannot share a SQLite file (network filesystems "
                "break its locking); use --db postgresql+psycopg://... (see `scalelab db copy`)"
            )
        return launch_slurm(db, options)
    raise LaunchError(f"unknown executor {options.executor!r}; use local or slurm")
