"""Chinchilla's Approach 2: IsoFLOP profiles (Hoffmann et al. 2022, Sec. 3.2).

At one compute budget C, runs of several model sizes spend the same compute; their error
against log P is a valley. A parabola per profile puts its bottom at P*(C), and the N a run of
that size gets at that budget is N*(C). Power laws P* ∝ C^a and N* ∝ C^b are then fitted to
the minima by least squares in logs.

A profile is a group of points whose compute agrees to PROFILE_GAP_DECADES: the points of an
`[isoflop]` grid share their budget exactly, and points imported from published figures
(Chinchilla's, read off a plot) scatter a little around theirs. Two warnings matter because
they bias the exponents: a minimum outside the sampled sizes (off-centre sampling: the
parabola extrapolates) and a valley too shallow to locate its bottom (the profile is left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalelab.analysis.fitting import fit_log_linear
from scalelab.errors import FitError

# Points whose log10 compute is within this of a neighbour's are one profile (single linkage):
# 0.02 decades = 4.7%, below the spacing of every published IsoFLOP grid (Misfitting's budgets
# are 0.093 decades apart) and above the rounding of N in an [isoflop] grid.
PROFILE_GAP_DECADES = 0.02
MIN_PROFILE_SIZES = 3  # a parabola through fewer distinct P has no degree of freedom
MIN_PROFILES = 3  # minima for a power law with one degree of freedom
# A valley whose depth over the sampled sizes is below this many times the scatter of the
# points about the parabola does not locate its minimum.
DEPTH_OVER_SCATTER = 2.0


@dataclass(frozen=True)
class Profile:
    """One IsoFLOP profile and the bottom of its parabola E = c2·x² + c1·x + c0, x = ln P."""

    budget: float  # geometric mean of the profile's compute
    n_points: int
    n_sizes: int
    params_min: float
    params_max: float
    curvature: float  # c2, per (ln P)²
    params: float  # P* at the bottom
    examples: float  # N* at the bottom: ln N interpolated linearly in ln P
    error: float  # the parabola's value at the bottom
    off_centre: bool
    used: bool  # False: too flat to locate a minimum

    def as_dict(self) -> dict[str, float | int | bool]:
        return {k: v if isinstance(v, bool | int) else float(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class Approach2:
    """P*(C) = params_coefficient · C^params_exponent, likewise N*(C), from IsoFLOP minima."""

    epochs: float
    params_coefficient: float
    params_exponent: float
    examples_coefficient: float
    examples_exponent: float
    profiles: tuple[Profile, ...]
    warnings: tuple[str, ...]  # one line per off-centre or flat profile
    dropped: tuple[str, ...]  # points not in any usable profile, with the reason

    @property
    def n_profiles(self) -> int:
        return sum(p.used for p in self.profiles)

    def params_at(self, compute: float | np.ndarray) -> np.ndarray:
        return self.params_coefficient * np.asarray(compute, float) ** self.params_exponent

    def examples_at(self, compute: float | np.ndarray) -> np.ndarray:
        return self.examples_coefficient * np.asarray(compute, float) ** self.examples_exponent


def profile_groups(compute: np.ndarray) -> list[np.ndarray]:
    """Indices of each group of compute values within PROFILE_GAP_DECADES of a neighbour,
    in order of increasing compute."""
    order = np.argsort(compute, kind="stable")
    gaps = np.diff(np.log10(compute[order]))
    return np.split(order, np.flatnonzero(gaps > PROFILE_GAP_DECADES) + 1)


def fit_profile(compute: np.ndarray, params: np.ndarray, examples: np.ndarray, error: np.ndarray):
    """The parabola of one profile (arrays (n,), n ≥ 3 with 3 distinct P): a Profile."""
    log_p = np.log(params)
    centre = float(log_p.mean())  # centred so the fit is well conditioned at P ~ 1e9
    x = log_p - centre
    c2, c1, c0 = np.polyfit(x, error, 2)
    scatter = float(np.sqrt(np.mean((np.polyval([c2, c1, c0], x) - error) ** 2)))
    depth = c2 * ((x.max() - x.min()) / 2) ** 2  # rise from the bottom to the range's edge
    located = c2 > 0 and depth > DEPTH_OVER_SCATTER * scatter
    x_star = -c1 / (2 * c2) if c2 > 0 else float(x[np.argmin(error)])
    slope, intercept = np.polyfit(x, np.log(examples), 1)  # N ∝ C/P: slope -1 on a true profile
    return Profile(
        budget=float(np.exp(np.mean(np.log(compute)))),
        n_points=len(error),
        n_sizes=len(np.unique(params)),
        params_min=float(params.min()),
        params_max=float(params.max()),
        curvature=float(c2),
        params=float(np.exp(centre + x_star)),
        examples=float(np.exp(intercept + slope * x_star)),
        error=float(np.polyval([c2, c1, c0], x_star)),
        off_centre=bool(located and not x.min() <= x_star <= x.max()),
        used=bool(located),
    )


def _warning(p: Profile) -> str | None:
    where = f"the IsoFLOP profile at C = {p.budget:.3g} FLOP"
    sampled = f"{p.params_min:.3g} to {p.params_max:.3g}"
    if not p.used:
        return (
            f"approach2: {where} is too flat to locate a minimum (curvature {p.curvature:.3g} "
            f"over P = {sampled}); left out: add model sizes further from its bottom"
        )
    if p.off_centre:
        return (
            f"approach2: {where} has its minimum at P = {p.params:.3g}, outside the sampled "
            f"P = {sampled}; off-centre sampling biases Approach 2: add sizes around P*"
        )
    return None


def fit_approach2(
    epochs: float,
    compute: np.ndarray,
    params: np.ndarray,
    examples: np.ndarray,
    error: np.ndarray,
) -> Approach2:
    """Approach 2 on points that all have T = ``epochs``; FitError with fewer than
    MIN_PROFILES profiles whose minimum could be located."""
    profiles, not_profiles = [], []
    for group in profile_groups(compute):
        if len(np.unique(params[group])) < MIN_PROFILE_SIZES:
            not_profiles.append(group)
            continue
        profiles.append(fit_profile(compute[group], params[group], examples[group], error[group]))
    used = [p for p in profiles if p.used]
    dropped = []
    if not_profiles:
        n = sum(len(g) for g in not_profiles)
        dropped.append(
            f"{n} points in {len(not_profiles)} compute groups with fewer than "
            f"{MIN_PROFILE_SIZES} model sizes (not IsoFLOP profiles)"
        )
    flat = [p for p in profiles if not p.used]
    if flat:
        dropped.append(
            f"{sum(p.n_points for p in flat)} points in {len(flat)} profiles too flat to locate "
            "a minimum"
        )
    if len(used) < MIN_PROFILES:
        raise FitError(
            f"Approach 2 needs {MIN_PROFILES} IsoFLOP profiles (points at equal compute, within "
            f"{10**PROFILE_GAP_DECADES - 1:.0%}, with {MIN_PROFILE_SIZES}+ model sizes and a "
            f"located minimum) at T={epochs:g}; found {len(used)}: enqueue a grid with an "
            "[isoflop] section"
        )
    budgets = np.array([p.budget for p in used])
    k_p, a = fit_log_linear(budgets, np.array([p.params for p in used]))
    k_n, b = fit_log_linear(budgets, np.array([p.examples for p in used]))
    warnings = tuple(w for w in map(_warning, profiles) if w is not None)
    return Approach2(epochs, k_p, a, k_n, b, tuple(profiles), warnings, tuple(dropped))
