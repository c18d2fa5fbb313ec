"""What a SLURM array task runs: one worker, with a real exit status and requeue on preemption.

submitit pickles a ``SlurmWorker`` and calls it on the node. The call returns the worker's
report (the task exits 0) or raises (the task exits non-zero and shows as FAILED), so a worker
that cannot reach its database never looks successful.

Preemption and time limits. SLURM sends USR2 a margin before the time limit (submitit's
``--signal=USR2@N``), or on preemption when the cluster is set up so; ``scancel --signal``
sends what it is told. submitit's own USR2 handler calls ``checkpoint()`` and then runs
``scontrol requeue`` and exits at once, in the middle of a training step. So while the worker
trains, its own handlers (``_StopSignals``) take USR2 and TERM instead: the step finishes, the
job is checkpointed and released. Only then is the signal handed to submitit's handler, which
saves the submission ``checkpoint()`` returns and requeues the task: the array keeps its size.
A task that SLURM is already ending (a plain ``scancel``, which sends TERM) is not requeued.
After ``max_requeues`` requeues, ``checkpoint()`` declines and the task ends FAILED, its job
released for the other tasks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

from scalelab.errors import ScalelabError
from scalelab.train.worker import WorkerOptions, run_worker

# submitit's preemption signal (its SlurmJobEnvironment.USR_SIG, the `--signal=USR2@N` it asks
# sbatch for); its handler for it is the requeue mechanism.
REQUEUE_SIGNAL = signal.SIGUSR2


def _slurm_state(job_id: str) -> str | None:
    """The task's JobState as slurmctld has it (COMPLETING once scancelled), or None."""
    if not job_id:  # not in a SLURM task: `scontrol show job ""` would list every job
        return None
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((f[len("JobState=") :] for f in out.split() if f.startswith("JobState=")), None)


class NotRequeued(ScalelabError):
    """The task was stopped and its job released, but SLURM would not requeue it."""


@dataclass(frozen=True)
class SlurmWorker:
    """A picklable callable: ``submitit`` runs it as one array task."""

    db: str | None
    options: WorkerOptions
    max_requeues: int = 3
    requeues: int = 0  # how often this task has been requeued so far

    def __call__(self, task: int) -> dict[str, Any]:
        """Array task ``task``: drain the queue; the report, or an exception for FAILED."""
        # The options were made on the submitting host: take this task's own SLURM job id.
        options = replace(self.options, slurm_job_id=os.environ.get("SLURM_JOB_ID"))
        print(f"scalelab worker: array task {task}, requeued {self.requeues}x", flush=True)
        try:
            report = run_worker(self.db, options)
        except ScalelabError as exc:
            # One line in the task's log says why; the raise makes the task FAILED.
            print(f"scalelab worker failed: {exc}", file=sys.stderr, flush=True)
            raise
        print(
            f"scalelab worker: {len(report.done)} done, {len(report.failed)} failed, "
            f"{len(report.released)} released"
            + (f", stopped by {report.stopped_by}" if report.stopped_by else ""),
            flush=True,
        )
        if report.stopped_by and report.stopped_by != "SIGINT":
            self._requeue(report.stopped_by)
        return asdict(report)

    def checkpoint(self, task: int) -> Any:
        """submitit's hook: the submission that continues this task, or None past the cap."""
        import submitit

        if self.requeues >= self.max_requeues:
            print(
                f"scalelab worker: not requeued, {self.requeues} requeues already "
                f"(--max-requeues {self.max_requeues})",
                file=sys.stderr,
                flush=True,
            )
            return None
        return submitit.helpers.DelayedSubmission(replace(self, requeues=self.requeues + 1), task)

    def _requeue(self, signame: str) -> None:
        handler = signal.getsignal(REQUEUE_SIGNAL)
        if not callable(handler):  # not under submitit on SLURM (e.g. its debug cluster)
            return
        state = _slurm_state(os.environ.get("SLURM_JOB_ID", ""))
        if state != "RUNNING":
            # scancel sends TERM to a task that is already ending (COMPLETING), as does the
            # time limit itself; SLURM would requeue even those, so a cancel would not stick.
            print(f"scalelab worker: the task is ending ({state}): job released, not requeued")
            return
        if self.requeues < self.max_requeues:  # else checkpoint() says why not
            print(
                f"scalelab worker: job released on {signame}; requeueing this task "
                f"({self.requeues + 1} of at most {self.max_requeues})",
                flush=True,
            )
        try:
            # submitit's handler: checkpoint(), save it, `scontrol requeue`, sys.exit.
            handler(REQUEUE_SIGNAL, None)
        except subprocess.CalledProcessError as exc:
            raise NotRequeued(
                f"stopped by {signame} and released its job, but `scontrol requeue` failed "
                f"(exit {exc.returncode}); the other tasks resume the job"
            ) from None
