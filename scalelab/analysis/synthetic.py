"""Runs generated from a known law, in the form of ``scalelab.load_runs``.

For checking that the fits recover what generated the data, and for benchmarks: the error of a
(P, N, T) point is E + A/P^alpha + B/(N·T^epoch_gain)^beta times log-normal noise, so at a fixed
T the parametric law holds exactly with B_T = B·T^(-epoch_gain·beta).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class KnownLaw:
    """E(P, N, T) = E + A/P^alpha + B/(N·T^epoch_gain)^beta."""

    E: float = 0.05
    A: float = 2.5e4
    B: float = 60.0
    alpha: float = 0.9
    beta: float = 0.35
    epoch_gain: float = 0.5  # more epochs help like more data, with diminishing returns

    def error(self, params: np.ndarray, examples: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        seen = examples * epochs**self.epoch_gain
        return self.E + self.A * params**-self.alpha + self.B * seen**-self.beta

    def b_at(self, epochs: float) -> float:
        """B of the parametric law at a fixed T."""
        return self.B * epochs ** (-self.epoch_gain * self.beta)


def synthetic_runs(
    params: Sequence[float] = tuple(np.geomspace(1e6, 1e8, 6)),
    examples: Sequence[float] = tuple(np.geomspace(1e4, 1e7, 6)),
    epochs: Sequence[float] = (50, 100, 200),
    seeds: Sequence[int] = (0,),
    *,
    law: KnownLaw = KnownLaw(),
    noise: float = 0.01,
    seed: int = 0,
    target: str = "synthetic",
) -> pd.DataFrame:
    """One job per (P, N, seed), evaluated at every T; C = FLOP(f)·3·N·T with FLOP(f) = P."""
    rng = np.random.default_rng(seed)
    grid = np.array(np.meshgrid(params, examples, seeds, epochs, indexing="ij")).reshape(4, -1).T
    p, n, s, t = grid.T  # (rows,) each; T varies fastest, so each job's rows are adjacent
    p, n = p.round(), n.round()  # whole parameters and examples, as stored
    error = law.error(p, n, t) * np.exp(noise * rng.standard_normal(len(p)))
    rows = len(p)
    n_epochs = len(epochs)
    return pd.DataFrame(
        {
            "checkpoint_id": np.arange(1, rows + 1),
            "job_id": np.arange(rows) // n_epochs + 1,
            "sweep": "synthetic",
            "source": "import",
            "status": "done",
            "model": [f"synthetic-{v:.4g}" for v in p],
            "params": p.astype(np.int64),
            "flops": p,
            "flop_convention": "mac",
            "examples": n.astype(np.int64),
            "seed": s.astype(np.int64),
            "epochs": t,
            "compute": 3.0 * p * n * t,
            "target": target,
            "method": "import",
            "error": error,
            "upstream_error": np.nan,
            "validation_error": np.nan,
            "train_loss": np.nan,
            "wall_seconds": np.nan,
            "batch_size": np.nan,
            "lr": np.nan,
        }
    )
