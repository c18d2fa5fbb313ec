"""Studies with known numbers: a real grid enqueued into a real database, each job claimed
and its checkpoints recorded through the worker's own calls, with errors from a formula
instead of training (so tests of fits and sweeps run in seconds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scalelab.flops import model_cost
from scalelab.grid import parse_grid
from scalelab.store.engine import open_engine
from scalelab.store.queue import claim, complete
from scalelab.store.results import CheckpointMetrics, ProbeRecord, record_checkpoint
from scalelab.store.sweeps import enqueue

GRID = """
name = "{name}"
dataset = "synthetic"
classes = 10
resolution = 16
models = {models}
examples = {examples}
epochs = {epochs}
seeds = {seeds}

[train]
batch_size = {batch_size}
lr = {lr}

[probe]
targets = ["synthetic-cifar10"]
"""
DEFAULTS = {
    "models": '["B-1/Wi-16", "B-1/Wi-64", "B-2/Wi-128", "B-2/Wi-256"]',
    "examples": "[1000, 4000, 16000]",
    "epochs": "[1, 2, 4]",
    "seeds": "[0]",
    "batch_size": "256",
    "lr": "1e-4",
}

# error(config, T) -> (target error, upstream error[, the probe's validation error]); config
# is the job's config dict. Without a validation error the probe records no held-out rows.
ErrorFn = Callable[[dict, float], tuple[float, ...]]


def law(config: dict, epochs: float) -> tuple[float, float]:
    """A smooth saturating law in P and N·T, the same for the upstream error."""
    params = model_cost(config["model"], 10, 16).params
    seen = config["examples"] * epochs**0.5
    error = 0.1 + 5.0 * params**-0.5 + 3.0 * seen**-0.3
    return error, error


def grid_file(tmp_path: Path, name: str = "main", **values: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(GRID.format(name=name, **{**DEFAULTS, **values}))
    return path


def record_grid(db: str, grid: Path, error: ErrorFn = law) -> None:
    """Enqueue ``grid`` into ``db`` and record every job at every T with ``error``."""
    engine = open_engine(db)
    enqueue(engine, parse_grid(grid))
    while (lease := claim(engine, "recorder")) is not None:
        for t in lease.epochs:
            target, upstream, *validation = error(lease.config, t)
            # As the ridge probe records them: one held-out error per penalty of its grid.
            details = {"validation_errors": [0.99, *validation]} if validation else {}
            flops = float(model_cost(lease.config["model"], 10, 16).flops)
            record_checkpoint(
                engine,
                lease,
                CheckpointMetrics(
                    epochs=t,
                    flops=flops,
                    compute=3 * flops * lease.config["examples"] * t,
                    upstream_error=upstream,
                ),
                [ProbeRecord("synthetic-cifar10", "ridge", target, details)],
                device="cpu",
                lease_s=60,
            )
        complete(engine, lease)
