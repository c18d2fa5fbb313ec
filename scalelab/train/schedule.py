"""Learning-rate schedules as a factor of the base rate at a (fractional) epoch.

The paper's scaling recipe is "constant": checkpoints at every T are then the same as separate
runs, so one job serves every T. "cosine" and "linear" decay to 0 over the job's T (one job
per T); all three take an optional linear warm-up.
"""

from __future__ import annotations

import math


def lr_factor(epoch: float, total_epochs: int, schedule: str, warmup_epochs: float) -> float:
    if warmup_epochs and epoch < warmup_epochs:
        return (epoch + 1e-9) / warmup_epochs
    if schedule == "constant":
        return 1.0
    span = max(total_epochs - warmup_epochs, 1e-9)
    progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"unknown schedule {schedule!r}")
