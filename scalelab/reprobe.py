"""`scalelab probe`: probe stored checkpoints again, with a new target or method.

A finished sweep gains a downstream target without retraining: the weights saved at every
evaluated T are loaded, probed, and the result stored beside the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from scalelab.errors import ProbeError
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.results import ProbeRecord, record_probe
from scalelab.store.schema import Checkpoint, Job


@dataclass(frozen=True)
class ReprobeResult:
    job_id: int
    epochs: float
    checkpoint_id: int
    target: str
    method: str
    error: float
    wall_seconds: float


def reprobe(
    db: str | os.PathLike[str] | None,
    job_id: int,
    target: str,
    *,
    method: str | None = None,
    epochs: float | None = None,
    device: str = "auto",
    settings: dict[str, Any] | None = None,
) -> list[ReprobeResult]:
    """Probe job `job_id`'s stored checkpoints (all, or the one at `epochs`) on `target`."""

    from scalelab.models import build_model
    from scalelab.probe import probe_encoder
    from scalelab.train import checkpoint
    from scalelab.train.device import resolve_device

    engine = open_engine(db, create=False)
    with session_scope(engine, write=False) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise ProbeError(f"no job with id {job_id}; see `scalelab status` or `scalelab export`")
        query = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.epochs)
        if epochs is not None:
            query = query.where(Checkpoint.epochs == epochs)
        ckpts = list(session.scalars(query))
        config = dict(job.config)
    if config.get("imported"):
        raise ProbeError(f"job {job_id} was imported: it has no weights to probe")
    if not ckpts:
        at = f" at T={epochs:g}" if epochs is not None else ""
        raise ProbeError(f"job {job_id} has no stored checkpoint{at}; train it first")
    method = method or config["probe"]["method"]
    settings = settings if settings is not None else config["probe"].get("settings", {})
    torch_device = resolve_device(device)
    model = build_model(config["model"], int(config["classes"]), int(config["resolution"]))
    results = []
    for ckpt in ckpts:
        if not ckpt.path or not Path(ckpt.path).exists():
            raise ProbeError(
                f"job {job_id} T={ckpt.epochs:g}: checkpoint file {ckpt.path} is missing; "
                "run the probe where the worker's --workdir is"
            )
        model.load_state_dict(checkpoint.load(Path(ckpt.path))["model"])
        model.to(torch_device)
        result = probe_encoder(
            model,
            target,
            method=method,
            resolution=int(config["resolution"]),
            device=torch_device,
            settings=settings,
            seed=int(config["seed"]),
        )
        record_probe(
            engine,
            ckpt.id,
            ProbeRecord(target, result.method, result.error, result.details, result.wall_seconds),
        )
        results.append(
            ReprobeResult(
                job_id,
                ckpt.epochs,
                ckpt.id,
                target,
                result.method,
                result.error,
                result.wall_seconds,
            )
        )
    return results
