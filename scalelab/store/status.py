"""What `scalelab status` shows: jobs per state, running and failed jobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from scalelab.store.engine import session_scope
from scalelab.store.schema import JOB_STATES, Job, utcnow


@dataclass(frozen=True)
class RunningJob:
    id: int
    model: str
    examples: int
    worker: str | None
    host: str | None
    slurm_job_id: str | None
    age_s: float
    heartbeat_age_s: float | None
    lease_expired: bool


@dataclass(frozen=True)
class FailedJob:
    id: int
    model: str
    examples: int
    status: str
    attempts: int
    error: str


@dataclass
class QueueStatus:
    counts: dict[str, int]
    running: list[RunningJob] = field(default_factory=list)
    failed: list[FailedJob] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _last_line(text: str | None) -> str:
    """The last non-empty line of an error (a traceback ends with the exception)."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def queue_status(engine: Engine) -> QueueStatus:
    now = utcnow()
    with session_scope(engine, write=False) as session:
        counts = dict.fromkeys(JOB_STATES, 0)
        for state, n in session.execute(select(Job.status, func.count()).group_by(Job.status)):
            counts[state] = n
        running = [
            RunningJob(
                id=job.id,
                model=job.model,
                examples=job.examples,
                worker=job.worker_id,
                host=job.host,
                slurm_job_id=job.slurm_job_id,
                age_s=(now - job.started_at).total_seconds() if job.started_at else 0.0,
                heartbeat_age_s=(now - job.heartbeat_at).total_seconds()
                if job.heartbeat_at
                else None,
                lease_expired=bool(job.lease_expires_at and job.lease_expires_at < now),
            )
            for job in session.scalars(
                select(Job).where(Job.status == "running").order_by(Job.host, Job.id)
            )
        ]
        failed = [
            FailedJob(
                id=job.id,
                model=job.model,
                examples=job.examples,
                status=job.status,
                attempts=job.attempts,
                error=_last_line(job.last_error),
            )
            for job in session.scalars(
                select(Job).where(Job.status.in_(["failed", "diverged"])).order_by(Job.id)
            )
        ]
    return QueueStatus(counts=counts, running=running, failed=failed)
