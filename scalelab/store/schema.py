"""The results database: declarative SQLAlchemy 2.0 models.

One sweep has many jobs; a job (model, N, seed, hyper-parameters) has one checkpoint row per
evaluated T; a checkpoint has one probe row per (target, method). Numbers that can be NaN or
infinite (a diverged loss) are stored as NULL plus an explicit ``*_state`` only where it
matters: a diverged job keeps its reason in ``jobs.last_error`` and is never fitted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JOB_STATES = ("queued", "running", "done", "failed", "diverged")


def utcnow() -> dt.datetime:
    """Naive UTC (SQLite has no time zones; every timestamp here is UTC)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    """The identity of this results database (one row, made with it; `db copy` keeps it).

    A checkpoint folder is keyed by (study, job), so a study's weights are its own.
    """

    __tablename__ = "study"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Sweep(Base):
    __tablename__ = "sweeps"
    __table_args__ = (UniqueConstraint("name", "grid_hash", name="uq_sweeps_name_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    grid_text: Mapped[str] = mapped_column(Text)
    grid_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20), default="grid")  # grid | import
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    jobs: Mapped[list[Job]] = relationship(back_populates="sweep")


class Provenance(Base):
    """Who produced a result: scalelab version and commit, torch, device, host."""

    __tablename__ = "provenance"
    __table_args__ = (
        UniqueConstraint(
            "scalelab_version",
            "git_commit",
            "torch_version",
            "device",
            "host",
            name="uq_provenance_all",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scalelab_version: Mapped[str] = mapped_column(String(50))
    git_commit: Mapped[str] = mapped_column(String(64))
    torch_version: Mapped[str] = mapped_column(String(50))
    device: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(200))


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Claims look up the oldest queued job and expired leases: both must stay O(log n).
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(100))
    params: Mapped[int] = mapped_column(BigInteger)
    flops: Mapped[float] = mapped_column(Float)  # FLOP(f) per example, MAC convention
    examples: Mapped[int] = mapped_column(BigInteger)
    seed: Mapped[int] = mapped_column(Integer)
    epochs: Mapped[list[Any]] = mapped_column(JSON)  # the T at which to evaluate, ascending
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Incremented by every claim: a fencing token, so a worker whose lease was taken over
    # cannot write over the new owner's results.
    claim_token: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(200))
    slurm_job_id: Mapped[str | None] = mapped_column(String(50))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    sweep: Mapped[Sweep] = relationship(back_populates="jobs")
    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="job", cascade="all, delete-orphan"
    )


class Checkpoint(Base):
    """One evaluated T of a job: compute per Eq. 4 and upstream metrics."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "epochs", name="uq_checkpoints_job_epochs"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    epochs: Mapped[float] = mapped_column(Float)  # T (float: imported results may be fractional)
    flops: Mapped[float] = mapped_column(Float)  # FLOP(f) per example
    flop_convention: Mapped[str] = mapped_column(String(20))  # "mac": 1 FLOP per multiply-add
    compute: Mapped[float] = mapped_column(Float)  # C = FLOP(f) * 3 * N * T
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    achieved_flops_per_s: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    upstream_loss: Mapped[float | None] = mapped_column(Float)
    upstream_error: Mapped[float | None] = mapped_column(Float)
    path: Mapped[str | None] = mapped_column(Text)  # the saved weights, when kept
    provenance_id: Mapped[int | None] = mapped_column(
        ForeignKey("provenance.id", name="fk_checkpoints_provenance")
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="checkpoints")
    probes: Mapped[list[ProbeResultRow]] = relationship(
        back_populates="checkpoint", cascade="all, delete-orphan"
    )
    provenance: Mapped[Provenance | None] = relationship()


class ProbeResultRow(Base):
    """Downstream linear-probe error of one checkpoint on one target."""

    __tablename__ = "probes"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "target", "method", name="uq_probes_ckpt_target_method"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True
    )
    target: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(20))
    error: Mapped[float] = mapped_column(Float)  # a fraction: 1 - top-1 accuracy (or a loss)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="probes")


class Fit(Base):
    """A stored scaling-law fit with the ids of the points it used."""

    __tablename__ = "fits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(100), index=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    checkpoint_ids: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
