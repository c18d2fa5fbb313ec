"""The points a fit uses: evaluated checkpoints with an error for one target, one point per
configuration (model, N, T, hyper-parameter setting), averaged over its seeds.

Diverged jobs and C = 0 random-init baselines are excluded and counted; every remaining value
must be finite and positive, because a law fitted in log space cannot take anything else.
Where a grid swept hyper-parameters, one setting is kept per (model, N, T) by SELECTION_RULE,
which never looks at the test error being fitted (except for imports, which carry no
held-out error, and say so). It scores a setting on the target itself, by the error its probe
made on the rows of the target's training split it held out to choose its penalty: on the
demo, the upstream held-out error (another task) chose the rate that probed 0.017 worse at 2
of the 12 contested (model, N) at T = 1 on synthetic-cifar100, and Approach 1's P* exponent
fell from 0.20 to 0.16, outside E(P, N)'s interval. The upstream error decides
only where a probe kept no held-out rows (a single penalty, or the `lion` probe).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scalelab.errors import FitError

COLUMNS = (
    "checkpoint_id",
    "model",
    "params",
    "examples",
    "epochs",
    "compute",
    "error",
    "seed",
    "sweep",
    "upstream_error",
    "validation_error",
    "setting",
)
NUMERIC = ("compute", "error", "params", "examples", "epochs")  # all must be positive
AT = ["model", "examples", "epochs"]  # where hyper-parameter settings compete
CANONICAL_ORDER = ["params", "model", "examples", "setting", "seed", "epochs"]
SELECTION_RULE = (
    "per (model, N, T), the hyper-parameter setting with the lowest mean validation error of "
    "the target's probe (on the rows of the target's training split it held out to choose its "
    "penalty; never the test split); where a competing setting has none, the lowest mean "
    "upstream held-out error; imported rows have neither: the lowest mean target error"
)
# What decides a contest, in SELECTION_RULE's order: the first score every setting has.
SCORES = (
    ("validation_error", "by_validation_error"),
    ("upstream_error", "by_upstream_error"),
    ("error", "by_target_error"),
)


@dataclass(frozen=True)
class Points:
    """The usable points of one target.

    ``frame``: the kept checkpoints (COLUMNS plus ``run``, an integer per job: one (model, N,
    seed, setting) trajectory, and ``config``, an integer per (model, N, setting): the seeds of
    one configuration). ``averaged``: one row per (config, T), the seed-mean error, what is
    fitted. ``selection``: the rule that chose among hyper-parameter settings and what it
    dropped. ``sweeps``: the sweeps whose rows were considered (before the selection), and
    ``candidates`` those rows (COLUMNS plus ``run``), every setting's.
    """

    target: str
    method: str
    frame: pd.DataFrame
    averaged: pd.DataFrame
    excluded: dict[str, int]
    selection: dict[str, Any]
    sweeps: list[str]
    candidates: pd.DataFrame

    def take(self, index: np.ndarray) -> Points:
        """Only the averaged points ``index`` (and the checkpoints behind them), configurations
        numbered 0..K-1 again (what PointArrays' seed resampling indexes by)."""
        averaged = self.averaged.iloc[index].reset_index(drop=True)
        kept = pd.MultiIndex.from_frame(averaged[["config", "epochs"]])
        rows = pd.MultiIndex.from_frame(self.frame[["config", "epochs"]]).isin(kept)
        frame = self.frame[rows].reset_index(drop=True)
        codes = {c: i for i, c in enumerate(sorted(averaged["config"].unique()))}
        averaged["config"] = averaged["config"].map(codes)
        frame["config"] = frame["config"].map(codes)
        cells = pd.MultiIndex.from_frame(averaged[AT])
        competed = pd.MultiIndex.from_frame(self.candidates[AT]).isin(cells)
        candidates = self.candidates[competed].reset_index(drop=True)
        return dataclasses.replace(self, frame=frame, averaged=averaged, candidates=candidates)

    def checkpoint_ids(self, index: np.ndarray) -> list[int]:
        """The checkpoints behind the averaged points ``index``."""
        return sorted(int(i) for ids in self.averaged["checkpoint_ids"].iloc[index] for i in ids)


def _describe_ids(ids: pd.Series) -> str:
    shown = ", ".join(str(int(i)) for i in ids.iloc[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def select_settings(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Keep one hyper-parameter setting per (model, N, T) by SELECTION_RULE.

    A setting's score is its mean over seeds, of the first of SCORES that every evaluation of
    every competing setting has. Ties go to the setting listed first (sorted by name).
    """
    competing = rows.groupby(AT)["setting"].transform("nunique") > 1
    selection: dict[str, Any] = {
        "rule": SELECTION_RULE,
        "contested": 0,  # (model, N, T) with more than one setting
        # Of those, how many each score decided.
        **{counter: 0 for _, counter in SCORES},
        "dropped": 0,  # evaluations (a run at one T) left out
        "dropped_runs": 0,  # runs none of whose evaluations were kept
    }
    if not competing.any():
        return rows, selection
    scores = (
        rows[competing]
        .groupby([*AT, "setting"])
        .agg(
            **{column: (column, "mean") for column, _ in SCORES},
            **{f"has_{column}": (column, lambda s: bool(s.notna().all())) for column, _ in SCORES},
        )
        .reset_index()
    )
    losers = []
    for key, group in scores.groupby(AT, sort=True):
        column, counter = next(
            (column, counter) for column, counter in SCORES if group[f"has_{column}"].all()
        )
        best = group.loc[group[column].idxmin(), "setting"]
        losers += [(*key, setting) for setting in group["setting"] if setting != best]
        selection["contested"] += 1
        selection[counter] += 1
    lost = pd.MultiIndex.from_tuples(losers, names=[*AT, "setting"])
    dropped = rows.set_index([*AT, "setting"]).index.isin(lost)
    kept = rows[~dropped]
    selection["dropped"] = int(dropped.sum())
    selection["dropped_runs"] = len(set(rows.loc[dropped, "run"]) - set(kept["run"]))
    return kept, selection


def _average(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, T): the mean error over the configuration's seeds (runs)."""
    averaged = (
        frame.groupby(["config", "epochs"], sort=True)
        .agg(
            model=("model", "first"),
            params=("params", "first"),
            examples=("examples", "first"),
            compute=("compute", "mean"),
            error=("error", "mean"),
            seeds=("run", "nunique"),
            checkpoint_ids=("checkpoint_id", list),
        )
        .reset_index()
    )
    return averaged


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
    kept = kept.copy()
    defaults = (("setting", ""), ("upstream_error", np.nan), ("validation_error", np.nan))
    for column, default in (*defaults, ("sweep", "")):
        if column not in kept:
            kept[column] = default  # a frame built by hand, without these columns
    kept[list(NUMERIC)] = kept[list(NUMERIC)].astype(float)
    # One order for the same points however the database stored them (workers finish jobs in
    # any order): runs, configurations and seed slots are numbered in it, so a bootstrap seed
    # draws the same resamples from two databases with the same results.
    kept = kept.sort_values([*CANONICAL_ORDER, "job_id", "checkpoint_id"], kind="stable")
    # A run is a job; rows without a job id are told apart by (model, N, seed, setting).
    keys = ["job_id"] if kept["job_id"].notna().all() else ["model", "examples", "seed", "setting"]
    kept["run"] = kept.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    sweeps = sorted(str(s) for s in kept["sweep"].unique())
    candidates = kept.loc[:, [*COLUMNS, "run"]].reset_index(drop=True)
    kept, selection = select_settings(kept)
    frame = kept.loc[:, [*COLUMNS, "run"]].copy()
    # Numbered in order of first appearance: with one seed each, configurations are the runs
    # in the same order, so a run bootstrap draws what it drew before seeds were averaged.
    frame["config"] = frame.groupby(["model", "examples", "setting"], sort=False).ngroup()
    frame = frame.reset_index(drop=True)
    return Points(
        target=target,
        method=method if method is not None else "".join(methods),  # at most one here
        frame=frame,
        averaged=_average(frame),
        excluded={"diverged": int(diverged.sum()), "baseline": int(baseline.sum())},
        selection=selection,
        sweeps=sweeps,
        candidates=candidates,
    )


@dataclass(frozen=True)
class PointArrays:
    """The averaged points as arrays (n,), the form every fit and resample uses: a bootstrap
    redoes each fit a thousand times and pandas would dominate the cost.

    ``run`` numbers the configurations (the unit a run bootstrap resamples), ``seed_errors``
    (n, k) holds each point's error per seed of its configuration (NaN where a seed has no
    evaluation at that T), for resampling seeds within configurations.
    """

    compute: np.ndarray
    error: np.ndarray
    params: np.ndarray
    examples: np.ndarray
    epochs: np.ndarray
    run: np.ndarray
    seed_errors: np.ndarray

    @classmethod
    def from_points(cls, points: Points) -> PointArrays:
        f, a = points.frame, points.averaged
        # Seed slot of each run within its configuration, the same at every T.
        slot = f.groupby("config")["run"].rank(method="dense").astype(int).to_numpy() - 1
        seed_errors = np.full((len(a), int(slot.max()) + 1), np.nan)
        row = pd.MultiIndex.from_frame(a[["config", "epochs"]]).get_indexer(
            pd.MultiIndex.from_frame(f[["config", "epochs"]])
        )
        seed_errors[row, slot] = f["error"].to_numpy(float)
        return cls(*(a[c].to_numpy(float) for c in NUMERIC), a["config"].to_numpy(), seed_errors)

    def take(self, index: np.ndarray) -> PointArrays:
        fields = (*NUMERIC, "run", "seed_errors")
        return PointArrays(*(getattr(self, c)[index] for c in fields))

    def at_epochs(self, epochs: float) -> PointArrays:
        return self.take(np.flatnonzero(self.epochs == epochs))

    def seeds_per_config(self) -> np.ndarray:
        """(configs,) how many seeds each configuration has (configs numbered 0..K-1)."""
        has = np.zeros((int(self.run.max()) + 1, self.seed_errors.shape[1]), bool)
        np.logical_or.at(has, self.run, np.isfinite(self.seed_errors))
        return has.sum(axis=1)

    def with_seed_counts(self, counts: np.ndarray) -> PointArrays:
        """These points with each configuration's seeds drawn ``counts`` (configs, k) times."""
        weights = counts[self.run] * np.isfinite(self.seed_errors)  # (n, k)
        total = weights.sum(axis=1)
        summed = np.where(weights > 0, np.nan_to_num(self.seed_errors) * weights, 0.0).sum(axis=1)
        # A point none of whose drawn seeds reached its T keeps its full mean.
        error = np.where(total > 0, summed / np.maximum(total, 1), self.error)
        return PointArrays(
            self.compute, error, self.params, self.examples, self.epochs, self.run,
            self.seed_errors,
        )  # fmt: skip
