"""Probing stored checkpoints again: `scalelab probe`, and a job's queued probe work.

A finished sweep gains a downstream target without retraining: the weights saved at every
evaluated T are loaded, probed, and the result stored beside the others. `scalelab enqueue`
of a grid with a new target (or new probe settings) queues the job again; its worker then
probes every stored checkpoint that lacks a current result (probe_missing) before training
any new T.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine, select

from scalelab.errors import ProbeError
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.queue import Lease
from scalelab.store.results import (
    SETTINGS_KEY,
    ProbeRecord,
    job_probes,
    record_probe,
    record_probes,
    stored_checkpoints,
)
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


def probe_record(
    model: torch.nn.Module,
    target: str,
    *,
    method: str,
    settings: dict[str, Any],
    config: dict[str, Any],
    device: torch.device,
    alive: Callable[[], None] = lambda: None,
) -> ProbeRecord:
    """Probe ``model`` (a job's encoder) on ``target``; the record keeps the settings used.
    ``alive`` is called after every batch through the encoder."""
    from scalelab.probe import probe_encoder

    result = probe_encoder(
        model,
        target,
        method=method,
        resolution=int(config["resolution"]),
        device=device,
        settings=settings,
        seed=int(config["seed"]),
        alive=alive,
        dataset=str(config.get("dataset", "synthetic")),
    )
    details = {**result.details, SETTINGS_KEY: settings}
    return ProbeRecord(target, result.method, result.error, details, result.wall_seconds)


def _load_weights(model: torch.nn.Module, job_id: int, ckpt: Checkpoint) -> None:
    from scalelab.train import checkpoint

    if not ckpt.path or not Path(ckpt.path).exists():
        raise ProbeError(
            f"job {job_id} T={ckpt.epochs:g}: checkpoint file {ckpt.path} is missing; "
            "restore the worker's --workdir (or retrain the job) to probe it"
        )
    model.load_state_dict(checkpoint.load(Path(ckpt.path))["model"])


def probe_missing(
    engine: Engine,
    lease: Lease,
    *,
    device: torch.device,
    lease_s: float,
    progress: Callable[[dict[str, Any]], None] = lambda info: None,
) -> int:
    """Probe each stored checkpoint of the leased job on the targets of its config that have
    no result made with its probe settings; returns how many results were stored."""
    from scalelab.models import build_model

    config = lease.config
    probe = config["probe"]
    method, settings = probe["method"], probe.get("settings", {})
    stored = job_probes(engine, lease.job_id)
    model = None
    done = 0
    for ckpt in stored_checkpoints(engine, lease.job_id):
        have = stored.get(ckpt.id, {})
        todo = [
            t
            for t in probe["targets"]
            if (t, method) not in have or have[(t, method)].get(SETTINGS_KEY, settings) != settings
        ]
        if not todo:
            continue
        if model is None:  # a model of its own: the runner's is the one being trained
            model = build_model(config["model"], int(config["classes"]), int(config["resolution"]))
        _load_weights(model, lease.job_id, ckpt)
        model.to(device)
        progress({"phase": "evaluate", "epoch": ckpt.epochs})
        records = [
            probe_record(
                model,
                t,
                method=method,
                settings=settings,
                config=config,
                device=device,
                alive=lambda: progress({"phase": "alive"}),
            )
            for t in todo
        ]
        record_probes(engine, lease, ckpt.id, records, lease_s=lease_s)
        done += len(records)
    return done


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
        _load_weights(model, job_id, ckpt)
        model.to(torch_device)
        record = probe_record(
            model, target, method=method, settings=settings, config=config, device=torch_device
        )
        record_probe(engine, ckpt.id, record)
        results.append(
            ReprobeResult(
                job_id,
                ckpt.epochs,
                ckpt.id,
                target,
                record.method,
                record.error,
                record.wall_seconds or 0.0,
            )
        )
    return results
