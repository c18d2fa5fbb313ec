"""`scalelab run-worker`: claim a job, train it with heartbeats, record, claim the next.

Failure handling, so that nothing is lost:
- SIGTERM/SIGINT/SIGUSR2 (or the time limit): finish the step, checkpoint, release the job,
  return; the report names the signal, so a SLURM task can ask to be requeued.
  If the job is blocked (a loader waiting for a batch that never comes) and does not reach
  its next step within STOP_GRACE_S, the watchdog releases the job and ends the process
  (exit 1): the job resumes elsewhere from its last checkpoint.
- A stuck job: the lease is renewed only while the job makes progress (training steps,
  evaluation batches, probe batches). With no progress for the stall limit (``--stall-min``) the
  watchdog releases the job with the reason and ends the process (exit 3).
- The database away (a restart, a dropped connection): every queue write and every stored
  result is retried with backoff; a job whose other reads fail on it is released (no attempt
  counted) and resumes from its checkpoint. If the lease cannot be renewed for half a
  lease, the job stops at its next step, keeps its local checkpoint, and the worker exits
  non-zero saying why (the job is released if the database answers again, else another
  worker takes it after the lease expires).
- A lease taken over by another worker: stop writing, drop the job, claim another.
- A NaN/inf loss: the job is marked ``diverged`` with the epoch; it is never fitted.
- A full disk at checkpoint time: the job is released with the reason (its last complete
  checkpoint stays; a partial file is never renamed into place) and the worker exits non-zero.
- A CUDA device fault other than out of memory (a device-side assert, an illegal address):
  the CUDA context is unusable, so the job goes back to the queue with the reason (counting
  an attempt) and the worker exits non-zero instead of failing every later job.
- A user-fixable error (data not prepared, ...): ``failed`` with the message at once.
- Anything else (out of memory, a bug): back to the queue with the error until its attempts
  are used up, then ``failed``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from scalelab.errors import LeaseLost, ScalelabError
from scalelab.store.engine import open_engine
from scalelab.store.queue import (
    DEFAULT_LEASE_S,
    Lease,
    claim,
    complete,
    default_worker_id,
    fail,
    heartbeat,
    mark_diverged,
    release,
    retry,
)
from scalelab.store.retry import is_transient, with_retries
from scalelab.store.sharing import shared_sqlite_warning
from scalelab.train.checkpoint import DiskFull
from scalelab.train.device import cpu_threads_for, is_device_fault, resolve_device
from scalelab.train.job import Diverged, JobControl, JobRunner, Stopped

DEFAULT_STALL_S = 1800.0
STOP_GRACE_S = 10.0  # after a stop signal, how long a blocked job may take to reach a step
ABANDON_RELEASE_S = 5.0  # how long the watchdog tries to release before it ends the process
_TICK_S = 0.5  # how often the watchdog looks at the job
STALLED_EXIT, BLOCKED_EXIT = 3, 1


class WorkerAborted(ScalelabError):
    """The worker cannot go on (database unreachable, disk full, CUDA context broken)."""

    exit_code = 3


@dataclass
class WorkerOptions:
    device: str = "auto"
    max_jobs: int | None = None
    until_empty: bool = False
    workdir: Path = Path("work")
    lease_s: float = DEFAULT_LEASE_S
    heartbeat_s: float | None = None  # default: a quarter of the lease
    threads: int | None = None  # CPU threads; default: cores / $SCALELAB_WORKERS_PER_HOST
    time_limit_s: float | None = None  # stop (checkpoint + release) before this much wall time
    poll_s: float = 10.0
    checkpoint_every_s: float = 600.0
    stall_s: float | None = DEFAULT_STALL_S  # no progress this long: release and exit
    worker_id: str | None = None
    slurm_job_id: str | None = field(default_factory=lambda: os.environ.get("SLURM_JOB_ID"))


@dataclass
class WorkerReport:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    diverged: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    stopped_by: str | None = None  # the signal that stopped the worker early, e.g. "SIGUSR2"


class _Heartbeat(threading.Thread):
    """The job's watchdog: renews the lease while the job makes progress, and acts when the
    main thread cannot (it may be blocked inside a loader, where no flag is ever looked at).

    - renews every ``every_s`` (on a thread of its own), only while the job's last progress
      is within the stall limit;
    - sets ``stale`` (a reason) once no renewal succeeded for half a lease: the job stops at
      its next step;
    - no progress for ``stall_s``, or a stop request not acted on within STOP_GRACE_S:
      releases the job with the reason and ends the process with ``os._exit``.
    """

    def __init__(
        self,
        engine: Any,
        lease: Lease,
        options: WorkerOptions,
        stop_requested: Callable[[], str | None],
        label: str,
    ) -> None:
        super().__init__(daemon=True)
        self.engine, self.lease, self.options, self.label = engine, lease, options, label
        self.every_s = options.heartbeat_s or options.lease_s / 4
        self.stop_requested = stop_requested
        self.lost = threading.Event()
        self.done = threading.Event()
        self.stale: str | None = None
        self.last_progress = self.last_renewed = time.monotonic()

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def _stalled(self, now: float) -> bool:
        return bool(self.options.stall_s) and now - self.last_progress > self.options.stall_s

    def run(self) -> None:
        # Renewals run on their own thread: a database call that hangs (a host gone from the
        # network) must not keep the watchdog from acting.
        threading.Thread(target=self._renew, daemon=True).start()
        stop_seen: float | None = None
        while not self.done.wait(_TICK_S):
            now = time.monotonic()
            if (reason := self.stop_requested()) and stop_seen is None:
                stop_seen = now
            if reason and stop_seen is not None and now - stop_seen > STOP_GRACE_S:
                self._abandon(
                    f"{reason} (the job was blocked and did not reach a step)", BLOCKED_EXIT
                )
            if self._stalled(now):
                self._abandon(
                    f"stalled: no progress for {self.options.stall_s / 60:g} min "
                    "(a blocked loader?); "
                    "released by its worker's watchdog",
                    STALLED_EXIT,
                )
            unrenewed = now - self.last_renewed
            if self.stale is None and unrenewed > self.options.lease_s / 2:
                self.stale = (
                    f"the lease could not be renewed for {unrenewed:.0f} s (over half the "
                    f"{self.options.lease_s:g} s lease): database unreachable"
                )

    def _renew(self) -> None:
        while not self.done.wait(self.every_s):
            if self._stalled(time.monotonic()):
                continue  # no progress: the lease is left to lapse (the watchdog releases it)
            try:
                heartbeat(self.engine, self.lease, lease_s=self.options.lease_s)
                self.last_renewed = time.monotonic()
            except LeaseLost:
                self.lost.set()
                return
            except Exception as exc:  # noqa: BLE001 - the database away: next beat retries
                print(f"heartbeat failed ({exc.__class__.__name__}); retrying", file=sys.stderr)

    def _abandon(self, reason: str, exit_code: int) -> None:
        """Release the job with the reason, say why, and end the process now (after at most
        ABANDON_RELEASE_S: with the database away, the job's lease lapses instead)."""
        outcome: list[str] = []

        def hand_back() -> None:
            try:
                _hand_back(self.engine, self.lease, release, reason, give_up_s=ABANDON_RELEASE_S)
                outcome.append("released")
            except Exception as exc:  # noqa: BLE001 - exiting anyway
                outcome.append(f"release failed: {exc.__class__.__name__}")

        releaser = threading.Thread(target=hand_back, daemon=True)
        releaser.start()
        releaser.join(ABANDON_RELEASE_S + 1)
        if outcome != ["released"]:
            failure = outcome[0] if outcome else "release timed out"
            reason += f" ({failure}; the lease will lapse)"
        print(f"[{self.label}] job {self.lease.job_id}: {reason}", file=sys.stderr, flush=True)
        os._exit(exit_code)


def _hand_back(
    engine: Any, lease: Lease, write: Callable[..., None], reason: str, *, give_up_s: float
) -> None:
    """release/fail/retry/mark_diverged with backoff through database outages."""
    with_retries(
        f"job {lease.job_id}: {write.__name__}",
        lambda _retried: write(engine, lease, reason),
        give_up_s=give_up_s,
    )


class _StopSignals:
    """SIGTERM/SIGINT/SIGUSR2 ask the current job to checkpoint and release, then the worker
    returns. SIGUSR2 is what SLURM sends before a time limit (``--signal=USR2@N``, as submitit
    asks) or on preemption; SIGTERM is what it sends on scancel and at the limit itself."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signal: str | None = None

    def __enter__(self) -> _StopSignals:
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal = signal.Signals(signum).name
        self.reason = f"released on {self.signal}"


def _bar(done: float, width: int = 20) -> str:
    filled = round(width * min(max(done, 0.0), 1.0))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _progress_printer(lease: Lease, label: str) -> Callable[[dict[str, Any]], None]:
    """Progress as one line every few seconds and at every epoch's end, with a bar over the
    whole job: lines (not a redrawn bar) stay readable when several workers share a terminal
    or write to a SLURM log."""
    last = [0.0]

    def show(info: dict[str, Any]) -> None:
        now = time.monotonic()
        end_of_epoch = info.get("batch") == info.get("batches")
        if info["phase"] == "train" and not end_of_epoch and now - last[0] < 5.0:
            return
        last[0] = now
        if info["phase"] == "evaluate":
            print(f"[{label}] job {lease.job_id}: evaluating T={info['epoch']}", flush=True)
            return
        done = (info["epoch"] - 1 + info["batch"] / info["batches"]) / info["epochs"]
        loss = "…" if info["loss"] is None else f"{info['loss']:.4f}"  # read one step late
        print(
            f"[{label}] job {lease.job_id} {lease.config['model']} N={lease.config['examples']} "
            f"{_bar(done)} {done:4.0%} "
            f"epoch {info['epoch']}/{info['epochs']} step {info['batch']}/{info['batches']} "
            f"loss {loss} {info['images_per_s']:,.0f} img/s",
            flush=True,
        )

    return show


def run_worker(db: str | None, options: WorkerOptions) -> WorkerReport:
    """Claim and run jobs until the queue is empty (or max_jobs, or a stop signal)."""
    engine = open_engine(db, create=False)
    if warning := shared_sqlite_warning(engine):
        print(warning, file=sys.stderr, flush=True)
    device = resolve_device(options.device)
    if device.type == "cpu":
        per_host = int(os.environ.get("SCALELAB_WORKERS_PER_HOST", "1"))
        torch.set_num_threads(options.threads or cpu_threads_for(per_host))
    worker_id = options.worker_id or default_worker_id()
    with _StopSignals() as signals:
        report = _work(engine, device, worker_id, options, signals)
    report.stopped_by = signals.signal
    return report


def _work(
    engine: Any,
    device: torch.device,
    worker_id: str,
    options: WorkerOptions,
    signals: _StopSignals,
) -> WorkerReport:
    label = worker_id.rsplit(":", 1)[-1]
    started = time.monotonic()
    report = WorkerReport()
    beat: _Heartbeat | None = None

    def stop_reason() -> str | None:
        if signals.reason:
            return signals.reason
        if options.time_limit_s and time.monotonic() - started > options.time_limit_s:
            return "released at the worker's time limit"
        return None

    def job_stop_reason() -> str | None:
        return (beat.stale if beat else None) or stop_reason()

    while options.max_jobs is None or len(report.done) < options.max_jobs:
        if stop_reason():
            break
        lease = with_retries(
            "claim",
            lambda retried: claim(
                engine,
                worker_id,
                lease_s=options.lease_s,
                slurm_job_id=options.slurm_job_id,
                adopt_own=retried,
            ),
            give_up_s=options.lease_s,
        )
        if lease is None:
            if options.until_empty:
                break
            time.sleep(options.poll_s)
            continue
        print(
            f"[{label}] claimed job {lease.job_id} ({lease.config.get('model')}, "
            f"N={lease.config.get('examples')}, T={lease.epochs}, attempt {lease.attempt})",
            flush=True,
        )
        # Only a signal, not the time limit, is forced through a blocked (or long-evaluating)
        # job: a signal says the process is about to be killed anyway.
        beat = _Heartbeat(engine, lease, options, lambda: signals.reason, label)
        beat.start()
        printer = _progress_printer(lease, label)

        def progress(
            info: dict[str, Any],
            beat: _Heartbeat = beat,
            printer: Callable[[dict[str, Any]], None] = printer,
        ) -> None:
            beat.progress()
            if info["phase"] != "alive":
                printer(info)

        control = JobControl(
            stop_reason=job_stop_reason,
            lease_lost=beat.lost.is_set,
            progress=progress,
            checkpoint_every_s=options.checkpoint_every_s,
        )
        try:
            _run_job(engine, lease, device, options, control, beat, report, label)
        finally:
            beat.done.set()
    return report


def _run_job(
    engine: Any,
    lease: Lease,
    device: torch.device,
    options: WorkerOptions,
    control: JobControl,
    beat: _Heartbeat,
    report: WorkerReport,
    label: str,
) -> None:
    """Run one job and record how it ended; raises WorkerAborted when the worker must stop."""

    def hand_back(write: Callable[..., None], reason: str) -> None:
        # For at most a lease: after that another worker may own the job anyway.
        _hand_back(engine, lease, write, reason, give_up_s=options.lease_s)

    def stopped(why: str) -> WorkerAborted:
        """The worker exits with the job's checkpoint on disk; its lease lapses or is freed."""
        return WorkerAborted(
            f"job {lease.job_id}: stopped, its checkpoint kept in {options.workdir}: {why}"
        )

    try:
        JobRunner(
            engine,
            lease,
            device=device,
            workdir=options.workdir,
            lease_s=options.lease_s,
            control=control,
        ).run()
        with_retries(
            f"job {lease.job_id}: complete",
            lambda _retried: complete(engine, lease),
            give_up_s=options.lease_s,
        )
        report.done.append(lease.job_id)
        print(f"[{label}] job {lease.job_id} done", flush=True)
    except Stopped as stop:
        if beat.lost.is_set():
            report.lost.append(lease.job_id)
            return
        if beat.stale:
            # The database may answer again; if not, the lease lapses. Exiting either way.
            with contextlib.suppress(Exception):
                release(engine, lease, str(stop))
            raise stopped(str(stop)) from None
        hand_back(release, str(stop))
        report.released.append(lease.job_id)
        print(f"[{label}] job {lease.job_id}: {stop}", flush=True)
    except LeaseLost as exc:
        report.lost.append(lease.job_id)
        print(f"[{label}] {exc}", file=sys.stderr, flush=True)
    except Diverged as exc:
        hand_back(mark_diverged, str(exc))
        report.diverged.append(lease.job_id)
        print(f"[{label}] job {lease.job_id} diverged: {exc}", flush=True)
    except DiskFull as exc:
        hand_back(release, str(exc))
        report.released.append(lease.job_id)
        raise WorkerAborted(f"job {lease.job_id} released: {exc}") from None
    except ScalelabError as exc:
        hand_back(fail, str(exc))
        report.failed.append(lease.job_id)
        print(f"[{label}] job {lease.job_id} failed: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - recorded, retried, never lost
        message = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if is_transient(exc):  # the database went away mid-job: not the job's fault
            reason = f"released: the database was unavailable during the job ({message})"
            try:
                hand_back(release, reason)
            except Exception as again:
                if not is_transient(again):
                    raise
                # Still away after a lease: exit, as a stale heartbeat does; the lease lapses.
                raise stopped(
                    f"the database was unavailable ({message}) and did not answer again within "
                    f"the {options.lease_s:g} s lease; it will lapse and the job be claimed again"
                ) from None
            report.released.append(lease.job_id)
            print(f"[{label}] job {lease.job_id} {reason}", file=sys.stderr, flush=True)
            return
        traceback.print_exc()
        if is_device_fault(exc):
            hand_back(retry, f"CUDA device fault: {message}")
            report.failed.append(lease.job_id)
            raise WorkerAborted(
                f"job {lease.job_id} handed back: CUDA device fault ({message}); this "
                "worker's CUDA context is unusable, so it stops (start a new worker)"
            ) from None
        hand_back(retry, message)
        report.failed.append(lease.job_id)
