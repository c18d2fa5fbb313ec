"""Enqueuing a grid: idempotent, transactional, with the planned compute per Eq. 4."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from scalelab.grid import Grid
from scalelab.store.engine import session_scope, take_turns
from scalelab.store.schema import Job, Sweep


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back after computing its report."""


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
    models: list[ModelPlan] = field(default_factory=list)

    @property
    def total_compute(self) -> float:
        return sum(m.compute for m in self.models)

    @property
    def new_compute(self) -> float:
        return sum(m.new_compute for m in self.models)


def enqueue(engine: Engine, grid: Grid, *, dry_run: bool = False) -> EnqueueReport:
    """Add the grid's jobs that are not in the database yet; extend jobs that gain new T.

    A job that is already done and gains a larger T is queued again: its worker resumes from
    the last checkpoint. Everything happens in one transaction (a dry run rolls it back).
    """
    report = EnqueueReport(sweep=grid.name, dry_run=dry_run)
    try:
        with session_scope(engine) as session:
            take_turns(session, "sweeps")  # the same grid enqueued from two shells at once
            sweep = session.scalars(
                select(Sweep).where(Sweep.name == grid.name, Sweep.grid_hash == grid.text_hash)
            ).first()
            if sweep is None:
                sweep = Sweep(name=grid.name, grid_text=grid.text, grid_hash=grid.text_hash)
                session.add(sweep)
                session.flush()
            existing = {
                job.config_hash: job
                for job in session.scalars(
                    select(Job).where(Job.config_hash.in_([j.config_hash for j in grid.jobs]))
                )
            }
            plans: dict[str, ModelPlan] = {}
            # Largest jobs first (claims follow ids): K workers then finish close together
            # instead of one worker running the biggest job alone at the end.
            for plan in sorted(grid.jobs, key=lambda p: -p.planned_compute):
                mp = plans.setdefault(plan.model, ModelPlan(plan.model, plan.params, plan.flops))
                mp.jobs += 1
                mp.compute += plan.planned_compute
                job = existing.get(plan.config_hash)
                if job is None:
                    session.add(
                        Job(
                            sweep_id=sweep.id,
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
                new_epochs = sorted(set(job.epochs) | set(plan.epochs))
                if new_epochs != sorted(job.epochs):
                    old_max = max(job.epochs)
                    job.epochs = new_epochs
                    job.config = {**job.config, "epochs": new_epochs}
                    report.extended += 1
                    if max(new_epochs) > old_max:
                        mp.new_compute += (
                            plan.flops * 3.0 * plan.examples * (max(new_epochs) - old_max)
                        )
                    if job.status == "done":
                        job.status = "queued"
                        job.attempts = 0
            report.models = sorted(plans.values(), key=lambda m: (m.params, m.model))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return report
