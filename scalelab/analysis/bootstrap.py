"""Uncertainty by bootstrap over seeds or runs.

Points are seed means per configuration (model, N, setting) and T. When every configuration
has several seeds, each resample draws, within each configuration, as many seeds as it has
(with replacement) and recomputes the means: the spread between seeds is the noise. Otherwise
the unit resampled is a configuration's trajectory across T (a run), never a single point: the
points of one run share a training trajectory, so resampling points would treat correlated
evaluations as independent and give intervals that are too narrow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalelab.analysis.estimates import Estimate
from scalelab.analysis.points import PointArrays
from scalelab.errors import FitError

CONFIDENCE = 0.95
# Below this share of resamples that could be fitted, an interval would describe only the
# lucky resamples; it is reported as null instead.
MIN_SUCCESS_SHARE = 0.5


def resample_runs(run: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of each resample: as many runs as there are, drawn with replacement."""
    rng = np.random.default_rng(seed)
    order = np.argsort(run, kind="stable")
    runs, starts, counts = np.unique(run[order], return_index=True, return_counts=True)
    for _ in range(resamples):
        picks = rng.integers(0, len(runs), len(runs))
        # Rows of the picked runs: starts[p] .. starts[p] + counts[p] in `order`.
        lengths = counts[picks]
        offsets = np.repeat(starts[picks] - np.cumsum(lengths) + lengths, lengths)
        yield order[offsets + np.arange(lengths.sum())]


def resample_seeds(data: PointArrays, resamples: int, seed: int) -> Iterator[PointArrays]:
    """Each resample: every configuration's seeds drawn with replacement, means recomputed."""
    rng = np.random.default_rng(seed)
    k = data.seeds_per_config()  # (configs,)
    slots = data.seed_errors.shape[1]
    config, _ = np.nonzero(np.arange(slots) < k[:, None])  # a config once per seed it has
    for _ in range(resamples):
        picks = (rng.random(len(config)) * k[config]).astype(int)  # a seed slot per draw
        counts = np.zeros((len(k), slots))
        np.add.at(counts, (config, picks), 1)
        yield data.with_seed_counts(counts)


def bootstrap_unit(data: PointArrays) -> str:
    """ "seed" when every configuration has two or more seeds, else "run"."""
    return "seed" if (data.seeds_per_config() >= 2).all() else "run"


@dataclass
class BootstrapDraws:
    """The kept numbers (Estimate.sample_fields) of every resample that could be fitted."""

    resamples: int
    seed: int
    unit: str = "run"
    samples: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)

    def succeeded(self, name: str) -> int:
        return len(self.samples.get(name, []))

    def interval(self, name: str, field_index: int) -> list[float] | None:
        """The 95% percentile interval of one sampled number; None if too few resamples fit."""
        values = self.samples.get(name, [])
        if not values or len(values) < MIN_SUCCESS_SHARE * self.resamples:
            return None
        column = np.array([v[field_index] for v in values])
        tail = 100 * (1 - CONFIDENCE) / 2
        lo, hi = np.percentile(column, [tail, 100 - tail])
        return [float(lo), float(hi)]


def bootstrap(
    data: PointArrays,
    epochs: float,
    estimates: Mapping[str, Estimate],
    full: Mapping[str, Any],
    *,
    resamples: int,
    seed: int,
    warm_start: bool = True,
    analytic_gradients: bool = True,
) -> BootstrapDraws:
    """Redo every estimate that was fitted on the full data (``full[name]`` not None) on each
    resample, warm-started from its full-data optimum; a resample that cannot be fitted (too few
    points, no convergence) is left out and counted by ``succeeded``."""
    unit = bootstrap_unit(data)
    fitted = {name: [] for name in full if full[name] is not None}
    draws = BootstrapDraws(resamples, seed, unit, fitted)
    if unit == "seed":
        samples = resample_seeds(data, resamples, seed)
    else:
        samples = (data.take(index) for index in resample_runs(data.run, resamples, seed))
    for sample in samples:
        for name in draws.samples:
            estimate = estimates[name]
            warm = full[name] if warm_start else None
            try:
                fit = estimate.fit(sample, epochs, warm, analytic_gradients)
            except FitError:
                continue
            draws.samples[name].append(estimate.sample(fit))
    return draws
