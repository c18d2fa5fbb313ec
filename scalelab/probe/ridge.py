"""The `ridge` probe: closed-form L2-regularised least squares on one-hot targets.

For centred standardised features X (n, D) and centred one-hot targets Y (n, K) it solves

    min_W  (1/n)·||X W − Y||² + λ·||W||²        ⇒  W(λ) = (XᵀX + nλ·I)⁻¹ XᵀY

with an unpenalised intercept. λ is per example, so the value chosen on 90% of the training
split means the same amount of regularisation when refitting on all of it. One
eigendecomposition XᵀX = V diag(s) Vᵀ gives W(λ) = V diag(1/(s + nλ)) VᵀXᵀY for every λ of
the grid at the cost of a matrix product each; when n < D the n×n Gram matrix XXᵀ is
decomposed instead. The final refit is one Cholesky solve. Decompositions and solves are
float64; only the scoring of held-out rows for each λ (an argmax) runs in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scalelab.errors import ProbeError
from scalelab.probe.linear import LinearClassifier, Standardiser, holdout_split, row_chunks

# λ from 1e-6 (almost unregularised) to 1e3 (almost the class prior) in half decades.
DEFAULT_PENALTIES: tuple[float, ...] = tuple(float(10.0**k) for k in np.arange(-6.0, 3.25, 0.5))


@dataclass
class Moments:
    """Sufficient statistics of rows (x, one-hot y) for least squares, added chunk by chunk."""

    n: int
    x_sum: Tensor  # (D,)
    xtx: Tensor  # (D, D)  Σ x xᵀ
    yx: Tensor  # (K, D)  Σ y xᵀ: row k sums the rows of class k
    y_sum: Tensor  # (K,)   class counts

    @classmethod
    def zeros(cls, dim: int, num_classes: int, device: torch.device) -> Moments:
        f64 = {"dtype": torch.float64, "device": device}
        return cls(
            n=0,
            x_sum=torch.zeros(dim, **f64),
            xtx=torch.zeros(dim, dim, **f64),
            yx=torch.zeros(num_classes, dim, **f64),
            y_sum=torch.zeros(num_classes, **f64),
        )

    @classmethod
    def of(cls, z: Tensor, labels: Tensor, num_classes: int) -> Moments:
        """The moments of float64 rows z (m, D) with integer labels (m,)."""
        moments = cls.zeros(z.shape[1], num_classes, z.device)
        moments.add(z, labels)
        return moments

    def add(self, z: Tensor, labels: Tensor) -> None:
        self.n += z.shape[0]
        self.x_sum += z.sum(dim=0)
        # torch, not numpy's faster syrk: on a 2-core machine numpy's OpenBLAS threads
        # spin-wait against torch's and made whole probes 5-10x slower at random.
        self.xtx.addmm_(z.T, z)
        self.yx.index_add_(0, labels, z)
        self.y_sum += torch.bincount(labels, minlength=self.y_sum.shape[0]).double()

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            n=self.n + other.n,
            x_sum=self.x_sum + other.x_sum,
            xtx=self.xtx + other.xtx,
            yx=self.yx + other.yx,
            y_sum=self.y_sum + other.y_sum,
        )

    def centred(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(XcᵀXc (D, D), XcᵀYc (D, K), x mean (D,), y mean (K,)) of the mean-centred rows."""
        x_mean, y_mean = self.x_sum / self.n, self.y_sum / self.n
        xtx = self.xtx - self.n * torch.outer(x_mean, x_mean)
        xty = self.yx.T - self.n * torch.outer(x_mean, y_mean)
        return xtx, xty, x_mean, y_mean


@dataclass(frozen=True)
class RidgeSpectrum:
    """W(λ) = basis · diag(1/(eigenvalues + nλ)) · coef for every λ, from one decomposition."""

    basis: Tensor  # (D, r): eigenvectors of XᵀX, or Xᵀ·(eigenvectors of XXᵀ)
    eigenvalues: Tensor  # (r,)
    coef: Tensor  # (r, K)
    n: int
    x_mean: Tensor  # (D,)
    y_mean: Tensor  # (K,)

    @classmethod
    def from_moments(cls, moments: Moments) -> RidgeSpectrum:
        """The primal form: eigendecomposition of the D×D covariance (for n ≥ D)."""
        xtx, xty, x_mean, y_mean = moments.centred()
        eigenvalues, vectors = torch.linalg.eigh(xtx)
        # Rounding can leave a zero eigenvalue slightly negative; the true spectrum is ≥ 0.
        return cls(vectors, eigenvalues.clamp_min(0), vectors.T @ xty, moments.n, x_mean, y_mean)

    @classmethod
    def from_rows(cls, x: Tensor, y: Tensor) -> RidgeSpectrum:
        """The dual form: eigendecomposition of the n×n Gram matrix (for n < D).

        x (n, D) float64 rows, y (n, K) float64 targets.
        """
        x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
        xc, yc = x - x_mean, y - y_mean
        eigenvalues, vectors = torch.linalg.eigh(xc @ xc.T)  # (n,), (n, n)
        # W(λ) = Xcᵀ(XcXcᵀ + nλI)⁻¹Yc = (XcᵀU) diag(1/(s + nλ)) (UᵀYc)
        basis, coef = xc.T @ vectors, vectors.T @ yc
        return cls(basis, eigenvalues.clamp_min(0), coef, x.shape[0], x_mean, y_mean)

    def _inverse(self, penalty: float) -> Tensor:
        return 1.0 / (self.eigenvalues + self.n * penalty)  # (r,)

    def weights(self, penalty: float) -> Tensor:
        """(D, K) weights of the centred problem for the per-example penalty λ."""
        return self.basis @ (self._inverse(penalty)[:, None] * self.coef)

    def project(self, z: Tensor) -> Tensor:
        """Standardised rows (m, D) → (m, r) coordinates shared by every λ, in z's dtype."""
        return (z - self.x_mean.to(z.dtype)) @ self.basis.to(z.dtype)

    def logits(self, projected: Tensor, penalty: float) -> Tensor:
        """(m, r) projected rows → (m, K) predictions for λ, intercept included."""
        scaled = (self._inverse(penalty)[:, None] * self.coef).to(projected.dtype)  # (r, K)
        return projected @ scaled + self.y_mean.to(projected.dtype)


def _moments(
    x: Tensor, y: Tensor, rows: Tensor, num_classes: int, standardiser: Standardiser
) -> Moments:
    moments = Moments.zeros(x.shape[1], num_classes, x.device)
    for selector, chunk in row_chunks(x, rows):
        moments.add(standardiser.apply(chunk, torch.float64), y[selector])
    return moments


def _one_hot(labels: Tensor, num_classes: int) -> Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).double()


def _spectrum(
    x: Tensor, y: Tensor, rows: Tensor, num_classes: int, standardiser: Standardiser
) -> tuple[RidgeSpectrum, Moments | None]:
    """The decomposition for `rows`, and their moments when the primal form computed them."""
    if rows.shape[0] >= x.shape[1]:
        moments = _moments(x, y, rows, num_classes, standardiser)
        return RidgeSpectrum.from_moments(moments), moments
    z = standardiser.apply(x[rows], torch.float64)
    return RidgeSpectrum.from_rows(z, _one_hot(y[rows], num_classes)), None


def _cholesky(matrix: Tensor, penalty: float) -> Tensor:
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        raise ProbeError(
            f"the ridge system is numerically singular at penalty {penalty:g}; "
            "choose from larger penalties"
        )
    return factor


def _refit(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    standardiser: Standardiser,
    moments: Moments | None,
    penalty: float,
) -> tuple[Tensor, Tensor]:
    """(weight (D, K), bias (K,)) on every row for one λ: a Cholesky solve, primal or dual."""
    n, dim = x.shape
    if n >= dim:
        assert moments is not None  # the caller computes them for every n ≥ D
        xtx, xty, x_mean, y_mean = moments.centred()
        xtx.diagonal().add_(n * penalty)
        weight = torch.cholesky_solve(xty, _cholesky(xtx, penalty))
    else:
        z = standardiser.apply(x, torch.float64)
        onehot = _one_hot(y, num_classes)
        x_mean, y_mean = z.mean(dim=0), onehot.mean(dim=0)
        xc = z - x_mean
        gram = xc @ xc.T
        gram.diagonal().add_(n * penalty)
        weight = xc.T @ torch.cholesky_solve(onehot - y_mean, _cholesky(gram, penalty))
    return weight, y_mean - x_mean @ weight


def _validation_errors(
    spectrum: RidgeSpectrum,
    x: Tensor,
    y: Tensor,
    rows: Tensor,
    standardiser: Standardiser,
    penalties: Sequence[float],
) -> list[float]:
    # Scoring is only an argmax per row, so it runs in float32 (half the time of the float64
    # products); the decomposition and the final solve stay in float64.
    wrong = torch.zeros(len(penalties), dtype=torch.float64, device=x.device)
    for selector, chunk in row_chunks(x, rows):
        projected = spectrum.project(standardiser.apply(chunk, torch.float32))  # (m, r)
        for i, penalty in enumerate(penalties):
            predicted = spectrum.logits(projected, penalty).argmax(dim=1)
            wrong[i] += (predicted != y[selector]).sum()
    return (wrong / rows.shape[0]).tolist()


def fit_ridge(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    seed: int,
    penalties: Sequence[float],
    holdout: float,
) -> tuple[LinearClassifier, dict[str, Any]]:
    """Choose λ on a seeded held-out `holdout` fraction of (x, y), then refit on all of it."""
    standardiser = Standardiser.fit(x)
    fit_rows, held_rows = (rows.to(x.device) for rows in holdout_split(x.shape[0], holdout, seed))
    spectrum, fit_moments = _spectrum(x, y, fit_rows, num_classes, standardiser)
    errors = _validation_errors(spectrum, x, y, held_rows, standardiser, penalties)
    # Among equally good λ take the largest: the most stable solution the data cannot refute.
    best = min(range(len(penalties)), key=lambda i: (errors[i], -penalties[i]))
    if x.shape[0] < x.shape[1]:
        moments = None
    elif fit_moments is not None:
        moments = fit_moments + _moments(x, y, held_rows, num_classes, standardiser)
    else:
        every_row = torch.arange(x.shape[0], device=x.device)
        moments = _moments(x, y, every_row, num_classes, standardiser)
    weight, bias = _refit(x, y, num_classes, standardiser, moments, penalties[best])
    details = {
        "penalty": penalties[best],
        "validation_errors": errors,
        "validation_rows": int(held_rows.shape[0]),
        "solver": "primal" if fit_moments is not None else "dual",
        "objective": "(1/n)||XW - Y||^2 + penalty*||W||^2, X standardised, Y one-hot",
    }
    return LinearClassifier(standardiser, weight, bias), details
