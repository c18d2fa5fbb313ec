"""Writing results (checkpoints, probes, fits) and reading them back as a DataFrame."""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from scalelab.store.engine import open_engine, session_scope, take_turns
from scalelab.store.identity import git_commit
from scalelab.store.queue import Lease, check_lease
from scalelab.store.schema import Checkpoint, Fit, Job, ProbeResultRow, Provenance, Sweep

# The probe settings a result was made with, kept in its details: when a grid changes the
# settings, results made with the old ones are stale and are probed again.
SETTINGS_KEY = "probe_settings"
FLOP_CONVENTION = "mac"  # one multiply-accumulate = one FLOP (fvcore, the paper's convention)
RUN_COLUMNS = [
    "checkpoint_id",
    "job_id",
    "sweep",
    "source",
    "status",
    "model",
    "params",
    "flops",
    "flop_convention",
    "examples",
    "seed",
    "epochs",
    "compute",
    "target",
    "method",
    "error",
    "upstream_error",
    "validation_error",
    "train_loss",
    "wall_seconds",
    "batch_size",
    "lr",
    "setting",
]
# What tells two runs of one (model, N, seed) apart: their hyper-parameters. Everything else
# in a job's config is either the run's coordinates or evaluation-only.
NOT_SETTING = ("model", "examples", "seed", "epochs", "train_epochs", "probe", "version")


def finite_or_none(value: float | None) -> float | None:
    """NaN and infinities are stored as NULL: a diverged metric is not a number to fit."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def provenance_id(session: Session, device: str) -> int:
    """The row describing this process (scalelab version and commit, torch, device, host)."""
    import torch

    from scalelab import __version__

    key = {
        "scalelab_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device": device,
        "host": socket.gethostname(),
    }
    lookup = select(Provenance.id).filter_by(**key)
    if (row_id := session.scalar(lookup)) is not None:
        return row_id  # every checkpoint after a process's first: no lock on this path
    # K workers record their first checkpoint at once: take turns, then look again (a new
    # statement sees a row another worker committed meanwhile) before inserting.
    take_turns(session, "provenance")
    if (row_id := session.scalar(lookup)) is not None:
        return row_id
    row = Provenance(**key)
    session.add(row)
    session.flush()
    return row.id


@dataclass(frozen=True)
class CheckpointMetrics:
    epochs: float
    flops: float
    compute: float
    wall_seconds: float | None = None
    achieved_flops_per_s: float | None = None
    train_loss: float | None = None
    upstream_loss: float | None = None
    upstream_error: float | None = None
    path: str | None = None


@dataclass(frozen=True)
class ProbeRecord:
    target: str
    method: str
    error: float
    details: dict[str, Any]
    wall_seconds: float | None = None


def replace_checkpoint(
    session: Session, job_id: int, metrics: CheckpointMetrics, device: str
) -> Checkpoint:
    # A resumed job re-evaluates a T its dead predecessor may have recorded: replace it.
    session.execute(
        delete(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.epochs == metrics.epochs)
    )
    ckpt = Checkpoint(
        job_id=job_id,
        epochs=metrics.epochs,
        flops=metrics.flops,
        flop_convention=FLOP_CONVENTION,
        compute=metrics.compute,
        wall_seconds=finite_or_none(metrics.wall_seconds),
        achieved_flops_per_s=finite_or_none(metrics.achieved_flops_per_s),
        train_loss=finite_or_none(metrics.train_loss),
        upstream_loss=finite_or_none(metrics.upstream_loss),
        upstream_error=finite_or_none(metrics.upstream_error),
        path=metrics.path,
        provenance_id=provenance_id(session, device),
    )
    session.add(ckpt)
    session.flush()
    return ckpt


def probe_validation_error(details: dict[str, Any] | None) -> float | None:
    """The error of the probe's chosen setting (penalty or l2) on the share of the target's
    training split it held out to choose it (``validation_errors``, one per candidate, the
    chosen one the lowest); None for a probe that chose nothing on held-out rows."""
    errors = (details or {}).get("validation_errors")
    return finite_or_none(min(errors)) if errors else None


def probe_row(checkpoint_id: int, probe: ProbeRecord) -> ProbeResultRow:
    return ProbeResultRow(
        checkpoint_id=checkpoint_id,
        target=probe.target,
        method=probe.method,
        error=probe.error,
        details=probe.details,
        wall_seconds=finite_or_none(probe.wall_seconds),
    )


def record_checkpoint(
    engine: Engine,
    lease: Lease,
    metrics: CheckpointMetrics,
    probes: list[ProbeRecord],
    *,
    device: str,
    lease_s: float,
) -> int:
    """Store one evaluated T and its probes atomically, under the worker's lease.

    Raises LeaseLost (and writes nothing) if the job was taken over.
    """
    with session_scope(engine) as session:
        check_lease(session, lease, lease_s=lease_s)
        ckpt = replace_checkpoint(session, lease.job_id, metrics, device)
        for probe in probes:
            session.add(probe_row(ckpt.id, probe))
        return ckpt.id


def _replace_probe(session: Session, checkpoint_id: int, probe: ProbeRecord) -> None:
    session.execute(
        delete(ProbeResultRow).where(
            ProbeResultRow.checkpoint_id == checkpoint_id,
            ProbeResultRow.target == probe.target,
            ProbeResultRow.method == probe.method,
        )
    )
    session.add(probe_row(checkpoint_id, probe))


def record_probe(engine: Engine, checkpoint_id: int, probe: ProbeRecord) -> None:
    """Store (or replace) one probe result of a stored checkpoint (re-probing)."""
    with session_scope(engine) as session:
        _replace_probe(session, checkpoint_id, probe)


def record_probes(
    engine: Engine, lease: Lease, checkpoint_id: int, probes: list[ProbeRecord], *, lease_s: float
) -> None:
    """Store (or replace) probe results of a stored checkpoint under the worker's lease: the
    queued probe work of an evaluation-only change. LeaseLost (nothing written) if taken over."""
    with session_scope(engine) as session:
        check_lease(session, lease, lease_s=lease_s)
        for probe in probes:
            _replace_probe(session, checkpoint_id, probe)


def job_probes(engine: Engine, job_id: int) -> dict[int, dict[tuple[str, str], dict[str, Any]]]:
    """Per checkpoint of a job: (target, method) -> the details of its stored probe result."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(
                ProbeResultRow.checkpoint_id,
                ProbeResultRow.target,
                ProbeResultRow.method,
                ProbeResultRow.details,
            )
            .join(Checkpoint, ProbeResultRow.checkpoint_id == Checkpoint.id)
            .where(Checkpoint.job_id == job_id)
        ).all()
    found: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
    for ckpt_id, target, method, details in rows:
        found.setdefault(ckpt_id, {})[(target, method)] = details or {}
    return found


def job_config(engine: Engine, job_id: int) -> dict[str, Any]:
    """A job's config as stored now (enqueue may have changed it since the job was claimed)."""
    with session_scope(engine, write=False) as session:
        return dict(session.scalar(select(Job.config).where(Job.id == job_id)) or {})


def stored_checkpoints(engine: Engine, job_id: int) -> list[Checkpoint]:
    with session_scope(engine, write=False) as session:
        return list(
            session.scalars(
                select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.epochs)
            )
        )


def save_fit(engine: Engine, target: str, result: dict[str, Any], checkpoint_ids: list[int]) -> int:
    with session_scope(engine) as session:
        fit = Fit(target=target, result=result, checkpoint_ids=[int(i) for i in checkpoint_ids])
        session.add(fit)
        session.flush()
        return fit.id


def latest_fit(engine: Engine, target: str) -> dict[str, Any] | None:
    with session_scope(engine, write=False) as session:
        fit = session.scalars(
            select(Fit).where(Fit.target == target).order_by(Fit.id.desc()).limit(1)
        ).first()
        return {**fit.result, "fit_id": fit.id} if fit else None


def setting_of(config: dict[str, Any]) -> str:
    """A short name for a job's hyper-parameter setting (its config less NOT_SETTING)."""
    identity = {k: v for k, v in config.items() if k not in NOT_SETTING}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def runs_frame(engine: Engine, sweeps: list[str] | None = None) -> pd.DataFrame:
    """One row per (checkpoint, target); held-out pretraining error as target 'upstream'.
    ``validation_error``: the probe's error on the rows of the target's training split it held
    out to choose its setting (see probe_validation_error), never on the test split.

    ``sweeps``: only the runs of the sweeps with these names (default: every sweep).
    """
    with session_scope(engine, write=False) as session:
        query = (
            select(
                Checkpoint.id,
                Job.id,
                Sweep.name,
                Sweep.source,
                Job.status,
                Job.model,
                Job.params,
                Checkpoint.flops,
                Checkpoint.flop_convention,
                Job.examples,
                Job.seed,
                Checkpoint.epochs,
                Checkpoint.compute,
                Checkpoint.upstream_error,
                Checkpoint.train_loss,
                Checkpoint.wall_seconds,
                Job.config,
            )
            .join(Job, Checkpoint.job_id == Job.id)
            .join(Sweep, Job.sweep_id == Sweep.id)
            .order_by(Checkpoint.id)
        )
        if sweeps is not None:
            query = query.where(Sweep.name.in_(sweeps))
        rows = session.execute(query).all()
        probes = session.execute(
            select(
                ProbeResultRow.checkpoint_id,
                ProbeResultRow.target,
                ProbeResultRow.method,
                ProbeResultRow.error,
                ProbeResultRow.details,
            ).order_by(ProbeResultRow.id)
        ).all()
    by_ckpt: dict[int, list[tuple[str, str, float, float | None]]] = {}
    for ckpt_id, target, method, error, details in probes:
        validation = probe_validation_error(details)
        by_ckpt.setdefault(ckpt_id, []).append((target, method, error, validation))
    records = []
    for (
        ckpt_id,
        job_id,
        sweep,
        source,
        status,
        model,
        params,
        flops,
        convention,
        examples,
        seed,
        epochs,
        compute,
        upstream_error,
        train_loss,
        wall,
        config,
    ) in rows:
        train = (config or {}).get("train", {})
        base = {
            "checkpoint_id": ckpt_id,
            "job_id": job_id,
            "sweep": sweep,
            "source": source,
            "status": status,
            "model": model,
            "params": params,
            "flops": flops,
            "flop_convention": convention,
            "examples": examples,
            "seed": seed,
            "epochs": epochs,
            "compute": compute,
            "upstream_error": upstream_error,
            "train_loss": train_loss,
            "wall_seconds": wall,
            "batch_size": train.get("batch_size"),
            "lr": train.get("lr"),
            "setting": setting_of(config or {}),
        }
        targets = list(by_ckpt.get(ckpt_id, []))
        if upstream_error is not None:
            targets.append(("upstream", "upstream", upstream_error, None))
        for target, method, error, validation in targets:
            records.append(
                {**base, "target": target, "method": method, "error": error,
                 "validation_error": validation}
            )  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=RUN_COLUMNS)
    floats = ("batch_size", "lr", "upstream_error", "validation_error", "train_loss")
    for column in (*floats, "wall_seconds", "error"):
        frame[column] = frame[column].astype(float)
    return frame


def load_runs(
    db: str | os.PathLike[str] | None = None, sweeps: list[str] | None = None
) -> pd.DataFrame:
    """Public API: every evaluated checkpoint of a database as a DataFrame (see RUN_COLUMNS),
    or only those of the named ``sweeps`` (checked: an unknown name is an error)."""
    from scalelab.store.studies import check_sweep_names

    engine = open_engine(db, create=False)
    if sweeps is not None:
        check_sweep_names(engine, sweeps)
    return runs_frame(engine, sweeps)
