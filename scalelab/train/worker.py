"""`scalelab run-worker`: claim a job, train it with heartbeats, record, claim the next.

Failure handling, so that nothing is lost:
- SIGTERM/SIGINT/SIGUSR2 (or the time limit): finish the step, checkpoint, release the job,
  return; the report names the signal, so a SLURM task can ask to be requeued.
- A lease taken over by another worker: stop writing, drop the job, claim another.
- A NaN/inf loss: the job is marked ``diverged`` with the epoch; it is never fitted.
- A user-fixable error (data not prepared, ...): ``failed`` with the message at once.
- Anything else (out of memory, a full disk, a bug): back to the queue with the error until
  its attempts are used up, then ``failed``.
"""

from __future__ import annotations

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
from scalelab.store.sharing import shared_sqlite_warning
from scalelab.train.device import cpu_threads_for, resolve_device
from scalelab.train.job import Diverged, JobControl, JobRunner, Stopped


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
    """Renews the lease in the background, so long steps and probes never let it lapse."""

    def __init__(self, engine: Any, lease: Lease, lease_s: float, every_s: float) -> None:
        super().__init__(daemon=True)
        self.engine, self.lease, self.lease_s, self.every_s = engine, lease, lease_s, every_s
        self.lost = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                heartbeat(self.engine, self.lease, lease_s=self.lease_s)
            except LeaseLost:
                self.lost.set()
                return
            except Exception as exc:  # noqa: BLE001 - a DB hiccup: try again next beat
                print(f"heartbeat failed ({exc.__class__.__name__}); retrying", file=sys.stderr)


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

    def stop_reason() -> str | None:
        if signals.reason:
            return signals.reason
        if options.time_limit_s and time.monotonic() - started > options.time_limit_s:
            return "released at the worker's time limit"
        return None

    while options.max_jobs is None or len(report.done) < options.max_jobs:
        if stop_reason():
            break
        lease = claim(engine, worker_id, lease_s=options.lease_s, slurm_job_id=options.slurm_job_id)
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
        beat = _Heartbeat(
            engine, lease, options.lease_s, options.heartbeat_s or options.lease_s / 4
        )
        beat.start()
        control = JobControl(
            stop_reason=stop_reason,
            lease_lost=beat.lost.is_set,
            progress=_progress_printer(lease, label),
            checkpoint_every_s=options.checkpoint_every_s,
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
            complete(engine, lease)
            report.done.append(lease.job_id)
            print(f"[{label}] job {lease.job_id} done", flush=True)
        except Stopped as stop:
            if beat.lost.is_set():
                report.lost.append(lease.job_id)
            else:
                release(engine, lease, str(stop))
                report.released.append(lease.job_id)
                print(f"[{label}] job {lease.job_id}: {stop}", flush=True)
        except LeaseLost as exc:
            report.lost.append(lease.job_id)
            print(f"[{label}] {exc}", file=sys.stderr, flush=True)
        except Diverged as exc:
            mark_diverged(engine, lease, str(exc))
            report.diverged.append(lease.job_id)
            print(f"[{label}] job {lease.job_id} diverged: {exc}", flush=True)
        except ScalelabError as exc:
            fail(engine, lease, str(exc))
            report.failed.append(lease.job_id)
            print(f"[{label}] job {lease.job_id} failed: {exc}", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - recorded, retried, never lost
            traceback.print_exc()
            message = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            retry(engine, lease, message)
            report.failed.append(lease.job_id)
        finally:
            beat.done.set()
    return report
