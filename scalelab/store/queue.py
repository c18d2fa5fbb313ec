"""The job queue: atomic claims with leases, heartbeats, completion, failure, requeue.

A claim is one short transaction. On SQLite it runs under ``BEGIN IMMEDIATE`` (the engine's
default for writing sessions), so claimants queue on the database lock and two of them can
never pick the same row. On PostgreSQL the candidate row is selected ``FOR UPDATE SKIP
LOCKED``, so claimants skip each other's rows instead of waiting.

Every claim increments ``claim_token``: the pair (job id, token) is a lease. Heartbeats,
results and completion are conditional UPDATEs on that pair, so a worker whose lease expired
and was taken over gets LeaseLost instead of overwriting the new owner's results.

Lease times come from the database server's clock (``clock_timestamp()`` on PostgreSQL, read
inside each transaction), never from the worker's: workers on several nodes whose clocks
disagree still agree on when a lease expires. SQLite is local, so its clock is the host's.

A write whose commit reached the server but whose reply was lost (a dropped connection) is
retried by the worker; every write here is therefore idempotent under its claim token: a
finish that already happened is accepted, and a claim already made by this worker is
returned again instead of claiming a second job.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from scalelab.errors import LeaseLost, ScalelabError
from scalelab.store.engine import is_sqlite, session_scope
from scalelab.store.schema import Job, utcnow

DEFAULT_LEASE_S = 600.0


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs a job."""

    job_id: int
    token: int
    worker_id: str
    config: dict[str, Any]
    epochs: list[float]
    attempt: int


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def db_now(session: Session) -> dt.datetime:
    """The database's current time as naive UTC: the one clock every lease is measured on."""
    if is_sqlite(session.get_bind()):
        return utcnow()
    return session.execute(text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")).scalar_one()


def _expire_exhausted(session: Session, now: dt.datetime) -> None:
    """Jobs whose lease expired with no attempts left become failed, with the reason."""
    session.execute(
        update(Job)
        .where(
            Job.status == "running",
            Job.lease_expires_at < now,
            Job.attempts >= Job.max_attempts,
        )
        .values(
            status="failed",
            finished_at=now,
            worker_id=None,
            lease_expires_at=None,
            last_error=(
                "lease expired on the last allowed attempt (the worker died or hung); "
                "run `scalelab requeue --job ID` to try again"
            ),
        )
        .execution_options(synchronize_session=False)
    )


def claim(
    engine: Engine,
    worker_id: str | None = None,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    host: str | None = None,
    slurm_job_id: str | None = None,
    adopt_own: bool = False,
) -> Lease | None:
    """Claim the oldest queued job, or one whose lease expired; None when nothing is left.

    ``adopt_own`` (a retried claim): first take up a running job that already carries this
    worker's id, a claim whose commit reached the server while its reply was lost.
    """
    worker_id = worker_id or default_worker_id()
    with session_scope(engine) as session:
        now = db_now(session)
        _expire_exhausted(session, now)
        # Plain column selects and one UPDATE: no ORM objects on the hot path.
        columns = (
            Job.id,
            Job.status,
            Job.worker_id,
            Job.lease_expires_at,
            Job.config,
            Job.epochs,
            Job.attempts,
            Job.claim_token,
            Job.started_at,
        )
        row, adopted = None, False
        conditions = [
            (Job.status == "queued",),
            (Job.status == "running", Job.lease_expires_at < now),
        ]
        if adopt_own:  # a worker runs one job at a time, and its id names one process
            conditions.insert(0, (Job.status == "running", Job.worker_id == worker_id))
        for condition in conditions:
            stmt = select(*columns).where(*condition).order_by(Job.id).limit(1)
            if not is_sqlite(engine):
                stmt = stmt.with_for_update(skip_locked=True)
            row = session.execute(stmt).first()
            if row is not None:
                adopted = adopt_own and condition is conditions[0]
                break
        if row is None:
            return None
        lease_end = now + dt.timedelta(seconds=lease_s)
        if adopted:  # this worker's own claim, committed already: only renew its lease
            token, attempt = row.claim_token, row.attempts
            values: dict[str, Any] = {"heartbeat_at": now, "lease_expires_at": lease_end}
        else:
            token, attempt = row.claim_token + 1, row.attempts + 1
            values = {
                "status": "running",
                "attempts": attempt,
                "claim_token": token,
                "worker_id": worker_id,
                "host": host or socket.gethostname(),
                "slurm_job_id": slurm_job_id,
                "heartbeat_at": now,
                "lease_expires_at": lease_end,
                "started_at": row.started_at or now,
            }
            if row.status == "running":
                values["last_error"] = (
                    f"lease of {row.worker_id} expired at "
                    f"{row.lease_expires_at:%Y-%m-%d %H:%M:%S}; resumed from the last checkpoint"
                )
        session.execute(
            update(Job)
            .where(Job.id == row.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return Lease(
            job_id=row.id,
            token=token,
            worker_id=worker_id,
            config=dict(row.config),
            epochs=[float(t) for t in row.epochs],
            attempt=attempt,
        )


def check_lease(session: Session, lease: Lease, *, lease_s: float | None = None) -> None:
    """Within a writing transaction: fail with LeaseLost unless the lease is still ours.

    With ``lease_s`` the lease is also renewed (a heartbeat), atomically with the check.
    """
    now = db_now(session)
    values: dict[str, Any] = {"heartbeat_at": now}
    if lease_s is not None:
        values["lease_expires_at"] = now + dt.timedelta(seconds=lease_s)
    result = session.execute(
        update(Job)
        .where(Job.id == lease.job_id, Job.claim_token == lease.token, Job.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise LeaseLost(
            f"job {lease.job_id}: lease lost (taken over by another worker or requeued); "
            "this worker stops writing its results"
        )


def heartbeat(engine: Engine, lease: Lease, *, lease_s: float = DEFAULT_LEASE_S) -> None:
    """Renew the lease; LeaseLost if another worker owns the job now."""
    with session_scope(engine) as session:
        check_lease(session, lease, lease_s=lease_s)


def _already(session: Session, lease: Lease, status: str) -> bool:
    """True if this lease's job is already in ``status`` under the same token: a retried write
    whose first try committed on the server while the client saw the connection drop."""
    row = session.execute(select(Job.status, Job.claim_token).where(Job.id == lease.job_id)).first()
    return row is not None and row.status == status and row.claim_token == lease.token


def _finish(engine: Engine, lease: Lease, status: str, error: str | None) -> None:
    with session_scope(engine) as session:
        if _already(session, lease, status):
            return
        now = db_now(session)
        check_lease(session, lease)
        session.execute(
            update(Job)
            .where(Job.id == lease.job_id)
            .values(
                status=status,
                finished_at=now,
                lease_expires_at=None,
                last_error=error,
            )
            .execution_options(synchronize_session=False)
        )


def complete(engine: Engine, lease: Lease) -> None:
    """Mark the job done (its results were recorded under the same lease)."""
    _finish(engine, lease, "done", None)


def fail(engine: Engine, lease: Lease, error: str) -> None:
    """Mark the job failed with the reason (one line; the worker keeps the traceback in its log)."""
    _finish(engine, lease, "failed", error)


def mark_diverged(engine: Engine, lease: Lease, error: str) -> None:
    """A NaN or infinite loss: the job is never fitted, its reason kept."""
    _finish(engine, lease, "diverged", error)


def release(engine: Engine, lease: Lease, reason: str = "released by its worker") -> None:
    """Give the job back to the queue (SIGTERM, time limit): the next worker resumes it.

    The attempt is not counted against the job: releasing is an orderly hand-over.
    """
    with session_scope(engine) as session:
        if _already(session, lease, "queued"):
            return
        check_lease(session, lease)
        session.execute(
            update(Job)
            .where(Job.id == lease.job_id)
            .values(
                status="queued",
                attempts=Job.attempts - 1,
                worker_id=None,
                lease_expires_at=None,
                last_error=reason,
            )
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class RequeueResult:
    requeued: list[int]


def requeue(
    engine: Engine,
    *,
    failed: bool = False,
    stale: bool = False,
    job_ids: list[int] | None = None,
    include_diverged: bool = False,
) -> RequeueResult:
    """Put jobs back in the queue with a fresh attempt count.

    ``failed``: failed jobs (and diverged ones with ``include_diverged``); ``stale``: running
    jobs whose lease expired; ``job_ids``: these jobs whatever their state (a running job with
    a live lease is refused: its worker is alive).
    """
    if not (failed or stale or job_ids):
        raise ScalelabError("nothing to requeue: give --failed, --stale or --job ID")
    with session_scope(engine) as session:
        now = db_now(session)
        chosen: set[int] = set()
        if failed:
            states = ["failed", "diverged"] if include_diverged else ["failed"]
            chosen |= set(session.scalars(select(Job.id).where(Job.status.in_(states))))
        if stale:
            chosen |= set(
                session.scalars(
                    select(Job.id).where(Job.status == "running", Job.lease_expires_at < now)
                )
            )
        for job_id in job_ids or []:
            job = session.get(Job, job_id)
            if job is None:
                raise ScalelabError(f"no job with id {job_id}; see `scalelab status` for ids")
            if job.status == "running" and job.lease_expires_at and job.lease_expires_at > now:
                raise ScalelabError(
                    f"job {job_id} is running on {job.worker_id} with a live lease; "
                    "stop that worker first, or wait for the lease to expire and use --stale"
                )
            chosen.add(job_id)
        if chosen:
            session.execute(
                update(Job)
                .where(Job.id.in_(sorted(chosen)))
                .values(status="queued", attempts=0, worker_id=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
        return RequeueResult(requeued=sorted(chosen))


def retry(engine: Engine, lease: Lease, error: str) -> None:
    """An unexpected error: queue the job again with the error, or fail it if out of attempts."""
    with session_scope(engine) as session:
        if _already(session, lease, "queued") or _already(session, lease, "failed"):
            return
        now = db_now(session)
        check_lease(session, lease)
        job = session.get(Job, lease.job_id)
        assert job is not None
        if job.attempts >= job.max_attempts:
            job.status, job.finished_at = "failed", now
            job.last_error = f"{error} (attempt {job.attempts} of {job.max_attempts})"
        else:
            job.status = "queued"
            job.last_error = f"{error} (attempt {job.attempts}; will retry)"
        job.worker_id = None
        job.lease_expires_at = None
