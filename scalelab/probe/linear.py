"""What every probe method produces: a linear classifier over standardised features.

Features are standardised with the mean and standard deviation of the training split, so a
probe's result does not depend on the arbitrary scale of an encoder's pre-logits (an L2
penalty would); the `lion` probe, the authors' protocol, uses the identity map instead.
Large splits (ImageNet-1k: 1.28M rows) are processed a chunk of rows at a time, so no full
float64 copy of the features is ever made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

CHUNK_ROWS = 16384


def row_chunks(
    x: Tensor, rows: Tensor | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[tuple[Tensor | slice, Tensor]]:
    """(selector, x[selector]) for consecutive chunks of `rows` (all rows when None)."""
    n = x.shape[0] if rows is None else rows.shape[0]
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        selector: Tensor | slice = slice(start, stop) if rows is None else rows[start:stop]
        yield selector, x[selector]


@dataclass(frozen=True)
class Standardiser:
    """Per-feature affine map to zero mean and unit variance on the training split."""

    mean: Tensor  # (D,) float64
    scale: Tensor  # (D,) float64; 1 for a constant feature, which then maps to 0, not NaN

    @classmethod
    def fit(cls, x: Tensor) -> Standardiser:
        # Per-chunk mean and squared deviations merged in float64 (Chan et al.): one pass,
        # without the cancellation of E[x²] − E[x]² when a mean is large next to its spread.
        # The chunks themselves stay in the features' precision: any fixed affine map applied
        # to both splits leaves the probe exact, so these statistics need not be.
        count = 0
        mean = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        squares = torch.zeros_like(mean)
        for _, chunk in row_chunks(x):
            m = chunk.shape[0]
            variance, chunk_mean = (s.double() for s in torch.var_mean(chunk, dim=0, correction=0))
            delta = chunk_mean - mean
            mean += delta * (m / (count + m))
            squares += variance * m + delta.square() * (count * m / (count + m))
            count += m
        std = (squares / count).sqrt()
        return cls(mean=mean, scale=torch.where(std > 0, std, torch.ones_like(std)))

    @classmethod
    def identity(cls, dim: int, device: torch.device) -> Standardiser:
        """The map that leaves features as they are (the authors' probe sees raw pre-logits)."""
        zeros = torch.zeros(dim, dtype=torch.float64, device=device)
        return cls(mean=zeros, scale=torch.ones_like(zeros))

    def apply(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        """(n, D) features → (n, D) standardised features in `dtype`."""
        z = x.to(dtype, copy=True)
        return z.sub_(self.mean.to(dtype)).div_(self.scale.to(dtype))


@dataclass(frozen=True)
class LinearClassifier:
    """argmax(standardise(x) @ weight + bias): the trained probe."""

    standardiser: Standardiser
    weight: Tensor  # (D, K)
    bias: Tensor  # (K,)

    def predict(self, x: Tensor) -> Tensor:
        """(n, D) raw features → (n,) int64 predicted classes."""
        predictions = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
        for selector, chunk in row_chunks(x):
            z = self.standardiser.apply(chunk, self.weight.dtype)  # (m, D)
            predictions[selector] = (z @ self.weight + self.bias).argmax(dim=1)
        return predictions

    def error(self, x: Tensor, y: Tensor) -> float:
        """1 − top-1 accuracy on (x, y), as a fraction."""
        return float((self.predict(x) != y).double().mean())


def holdout_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted (fit rows, held-out rows) of n: a seeded random `fraction` (at least one row)."""
    held = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held:].sort().values, order[:held].sort().values
