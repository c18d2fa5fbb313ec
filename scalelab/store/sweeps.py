"""Enqueuing a grid: idempotent, transactional, with the planned compute per Eq. 4.

A job already present is extended, never duplicated: a new T queues the rest of its training,
and an evaluation-only change (a new probe target, new probe method or settings) queues probe
work that workers do from its stored checkpoints. A dry run only reads: it creates no
database and no lock file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from scalelab.grid import Grid, parse_grid
from scalelab.store.engine import existing_engine, open_engine, session_scope, take_turns
from scalelab.store.results import SETTINGS_KEY
from scalelab.store.schema import Checkpoint, Job, ProbeResultRow, Sweep


@dataclass
class ModelPlan:
    model: str
    params: int
    flops: int
    jobs: int = 0
    added: int = 0
    compute: float = 0.0  # the whole grid's planned compute for this model (FLOPs)
    new_compute: float = 0.0  # what enqueuing adds (new jobs and new epochs)


@dataclass
class EnqueueReport:
    sweep: str
    dry_run: bool
    added: int = 0
    present: int = 0
    extended: int = 0  # existing jobs that got new evaluation epochs
    probe_extended: int = 0  # existing jobs that got probe work (new targets or settings)
    new_targets: list[str] = field(default_factory=list)  # targets those jobs will be probed on
    models: list[ModelPlan] = field(default_factory=list)
    isoflop: list[Any] = field(default_factory=list)  # the grid's IsoFLOP rows (grid.isoflop)
    recipe: dict[str, Any] = field(default_factory=dict)  # the resolved recipe (grid.recipe)
    # Present jobs that another sweep enqueued first, by that sweep's name: a job belongs to
    # one sweep, so fits of this one do not see them unless they read that sweep too.
    elsewhere: dict[str, int] = field(default_factory=dict)

    @property
    def total_compute(self) -> float:
        return sum(m.compute for m in self.models)

    @property
    def new_compute(self) -> float:
        return sum(m.new_compute for m in self.models)


def enqueue_grid(
    db: str | os.PathLike[str] | None, path: str | Path, *, dry_run: bool = False
) -> EnqueueReport:
    """`scalelab enqueue`: parse the grid file, then enqueue it into ``db`` (creating the
    database), or with ``dry_run`` only report what enqueuing would do (creating nothing)."""
    grid = parse_grid(path)
    if dry_run:
        return enqueue(existing_engine(db), grid, dry_run=True)
    return enqueue(open_engine(db), grid)


def _probe_work(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The targets a job must be probed on when its probe config changes from old to new."""
    same_probe = old.get("method") == new["method"] and old.get("settings") == new["settings"]
    before = set(old.get("targets", [])) if same_probe else set()
    return [t for t in new["targets"] if t not in before]


def _stamp_settings(session: Session, job: Job) -> None:
    """Record on the job's stored probe results the settings they were made with (results of
    scalelab before this field: the job's current settings), before those change."""
    settings = (job.config.get("probe") or {}).get("settings", {})
    rows = session.scalars(
        select(ProbeResultRow)
        .join(Checkpoint, ProbeResultRow.checkpoint_id == Checkpoint.id)
        .where(Checkpoint.job_id == job.id)
    )
    for row in rows:
        if SETTINGS_KEY not in (row.details or {}):
            row.details = {**(row.details or {}), SETTINGS_KEY: settings}


def enqueue(engine: Engine | None, grid: Grid, *, dry_run: bool = False) -> EnqueueReport:
    """Add the grid's jobs that are not in the database yet; extend jobs that gain new T or
    new probe work.

    A job that is already done and gains a larger T or probe work is queued again: its worker
    resumes from the last checkpoint. Everything happens in one transaction. A dry run reads
    only (``engine`` may be None: no database yet) and reports what would change.
    """
    if dry_run:
        existing: dict[str, tuple[Job, str]] = {}
        if engine is not None:
            with session_scope(engine, write=False) as session:
                existing = _existing(session, grid)  # detached: changes below are not saved
        return _extend(None, grid, existing, None, dry_run=True)
    assert engine is not None
    with session_scope(engine) as session:
        take_turns(session, "sweeps")  # the same grid enqueued from two shells at once
        sweep = session.scalars(
            select(Sweep).where(Sweep.name == grid.name, Sweep.grid_hash == grid.text_hash)
        ).first()
        if sweep is None:
            sweep = Sweep(name=grid.name, grid_text=grid.text, grid_hash=grid.text_hash)
            session.add(sweep)
            session.flush()
        return _extend(session, grid, _existing(session, grid), sweep.id, dry_run=False)


def _existing(session: Session, grid: Grid) -> dict[str, tuple[Job, str]]:
    """The grid's jobs already in the database, each with the name of the sweep it belongs to."""
    hashes = [j.config_hash for j in grid.jobs]
    rows = session.execute(
        select(Job, Sweep.name)
        .join(Sweep, Job.sweep_id == Sweep.id)
        .where(Job.config_hash.in_(hashes))
    )
    return {job.config_hash: (job, name) for job, name in rows}


def _extend(
    session: Session | None,
    grid: Grid,
    existing: dict[str, tuple[Job, str]],
    sweep_id: int | None,
    *,
    dry_run: bool,
) -> EnqueueReport:
    """The report of enqueuing ``grid`` over ``existing`` jobs, applied when ``session``."""
    report = EnqueueReport(
        sweep=grid.name, dry_run=dry_run, isoflop=list(grid.isoflop), recipe=grid.recipe
    )
    plans: dict[str, ModelPlan] = {}
    new_targets: set[str] = set()
    # Largest jobs first (claims follow ids): K workers then finish close together
    # instead of one worker running the biggest job alone at the end.
    for plan in sorted(grid.jobs, key=lambda p: -p.planned_compute):
        mp = plans.setdefault(plan.model, ModelPlan(plan.model, plan.params, plan.flops))
        mp.jobs += 1
        mp.compute += plan.planned_compute
        job, owner = existing.get(plan.config_hash, (None, grid.name))
        if owner != grid.name:
            report.elsewhere[owner] = report.elsewhere.get(owner, 0) + 1
        if job is None:
            if session is not None:
                session.add(
                    Job(
                        sweep_id=sweep_id,
                        config=plan.config,
                        config_hash=plan.config_hash,
                        model=plan.model,
                        params=plan.params,
                        flops=float(plan.flops),
                        examples=plan.examples,
                        seed=plan.seed,
                        epochs=plan.epochs,
                        status="queued",
                        attempts=0,
                        max_attempts=grid.max_attempts,
                        claim_token=0,
                    )
                )
            report.added += 1
            mp.added += 1
            mp.new_compute += plan.planned_compute
            continue
        report.present += 1
        requeue = False
        new_epochs = sorted(set(job.epochs) | set(plan.epochs))
        if new_epochs != sorted(job.epochs):
            old_max = max(job.epochs)
            job.epochs = new_epochs
            job.config = {**job.config, "epochs": new_epochs}
            report.extended += 1
            requeue = True
            if max(new_epochs) > old_max:
                mp.new_compute += plan.flops * 3.0 * plan.examples * (max(new_epochs) - old_max)
        probe = plan.config["probe"]
        if probe != job.config.get("probe"):
            targets = _probe_work(job.config.get("probe") or {}, probe)
            if session is not None:
                _stamp_settings(session, job)
            job.config = {**job.config, "probe": probe}
            if targets:
                report.probe_extended += 1
                new_targets.update(targets)
                requeue = True
        if requeue and job.status == "done":
            job.status = "queued"
            job.attempts = 0
    report.new_targets = sorted(new_targets)
    report.models = sorted(plans.values(), key=lambda m: (m.params, m.model))
    return report
