"""The points a fit uses: evaluated checkpoints with an error for one target.

Diverged jobs and C = 0 random-init baselines are excluded and counted; every remaining value
must be finite and positive, because a law fitted in log space cannot take anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalelab.errors import FitError

COLUMNS = ("checkpoint_id", "model", "params", "examples", "epochs", "compute", "error", "seed")
NUMERIC = ("compute", "error", "params", "examples", "epochs")  # all must be positive


@dataclass(frozen=True)
class Points:
    """The usable points of one target. ``frame`` has COLUMNS plus ``run``: an integer per job
    (one (model, N, seed) trajectory), the unit that bootstrap resamples."""

    target: str
    method: str
    frame: pd.DataFrame
    excluded: dict[str, int]


def _describe_ids(ids: pd.Series) -> str:
    shown = ", ".join(str(int(i)) for i in ids.iloc[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def select_points(df: pd.DataFrame, target: str, method: str | None = None) -> Points:
    """The points of ``target`` in a ``scalelab.load_runs`` frame; FitError if there are none,
    if they mix probe methods and none was chosen, or if a value is NaN or non-positive."""
    rows = df[df["target"] == target]
    if rows.empty:
        targets = sorted(set(df.loc[df["error"].notna(), "target"]))
        if not targets:
            raise FitError(
                f"no points for target {target!r}: the database has no evaluated checkpoints; "
                "run `scalelab run-worker` or `scalelab import FILE` first"
            )
        raise FitError(
            f"no points for target {target!r}; targets with points: {', '.join(targets)}"
        )
    methods = sorted(set(rows["method"].dropna()))
    if method is not None:
        if method not in methods:
            raise FitError(
                f"no points for target {target!r} with method {method!r}; "
                f"methods with points: {', '.join(methods)}"
            )
        rows = rows[rows["method"] == method]
    elif len(methods) > 1:
        raise FitError(
            f"target {target!r} has points from {len(methods)} methods ({', '.join(methods)}); "
            "choose one with --method"
        )
    diverged = rows["status"] == "diverged"
    baseline = ~diverged & (rows["compute"] == 0)
    kept = rows[~diverged & ~baseline]
    for column in NUMERIC:
        values = kept[column].astype(float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            raise FitError(
                f"{int(bad.sum())} points for target {target!r} have a NaN, infinite or "
                f"non-positive {column} (checkpoints {_describe_ids(kept['checkpoint_id'][bad])}); "
                f"fix or delete them: every {column} of a fitted point must be positive"
            )
    if kept.empty:
        raise FitError(
            f"no points for target {target!r} besides {int(diverged.sum())} diverged and "
            f"{int(baseline.sum())} C = 0 baseline points; finish some runs first"
        )
    frame = kept.loc[:, list(COLUMNS)].copy()
    frame[list(NUMERIC)] = frame[list(NUMERIC)].astype(float)
    # A run is a job; rows without a job id are told apart by (model, N, seed).
    keys = ["job_id"] if kept["job_id"].notna().all() else ["model", "examples", "seed"]
    frame["run"] = kept.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    return Points(
        target=target,
        method=method if method is not None else "".join(methods),  # at most one here
        frame=frame.reset_index(drop=True),
        excluded={"diverged": int(diverged.sum()), "baseline": int(baseline.sum())},
    )


@dataclass(frozen=True)
class PointArrays:
    """The numeric columns of Points as arrays (n,), the form every fit and resample uses:
    a bootstrap redoes each fit a thousand times and pandas would dominate the cost."""

    compute: np.ndarray
    error: np.ndarray
    params: np.ndarray
    examples: np.ndarray
    epochs: np.ndarray
    run: np.ndarray

    @classmethod
    def from_points(cls, points: Points) -> PointArrays:
        f = points.frame
        return cls(*(f[c].to_numpy(float) for c in NUMERIC), f["run"].to_numpy())

    def take(self, index: np.ndarray) -> PointArrays:
        return PointArrays(*(getattr(self, c)[index] for c in (*NUMERIC, "run")))

    def at_epochs(self, epochs: float) -> PointArrays:
        return self.take(np.flatnonzero(self.epochs == epochs))
