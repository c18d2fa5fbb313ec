"""`scalelab plot`: load the runs, fit the laws, draw the requested figures and save them.

The figure functions themselves never see a database; this module is the one place that
reads one, so that `scalelab plot` and a user's notebook draw exactly the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from scalelab.errors import FitError, PlotError
from scalelab.figures.allocation import fig8
from scalelab.figures.batch_size import batch_size_figure
from scalelab.figures.bottleneck import fig7
from scalelab.figures.compute import fig1, fig6
from scalelab.figures.save import save_figure
from scalelab.figures.style import (
    FIGURE_NAMES,
    fit_part,
    missing_fit_reason,
    rows_for_target,
    targets_with_data,
    unknown_figure,
)

DEFAULT_PAIR = ("cifar10", "imagenet1k")  # the paper's Fig. 6

# Which laws each figure draws, for saying which fitted lines are missing.
FIGURE_LAWS: dict[str, tuple[tuple[str, str], ...]] = {
    "fig1": (("compute_law", "compute-law"),),
    "fig6": (("compute_law", "compute-law"),),
    "fig7": (("params_law", "E(P)"), ("examples_law", "E(N)")),
    "fig8": (("allocation", "P*(C) and N*(C)"),),
    "batch-size": (),
}


@dataclass
class PlotReport:
    """What `scalelab plot` did: files written, figures skipped and why, fitted lines missing."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_fits: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": [str(p) for p in self.written],
            "skipped": self.skipped,
            "missing_fits": self.missing_fits,
        }


FitSource = Callable[[pd.DataFrame, str, str | None], dict[str, Any] | None]


def plot_figures(
    figure: str,
    runs: pd.DataFrame,
    fit_for: FitSource,
    *,
    target: str | None,
    targets: Sequence[str] | None = None,
    out_dir: str | Path = "plots",
    formats: Sequence[str] = ("png",),
    method: str | None = None,
) -> PlotReport:
    """Draw `figure` (one of FIGURE_NAMES) from `runs` and save it under `out_dir`.

    `fit_for(runs, target, method)` returns the fit dict for a target (or None). With
    figure 'all', every figure the data supports is drawn and the others are reported as
    skipped with the reason; with one named figure, a reason to skip is an error.
    """
    if figure not in FIGURE_NAMES:
        raise unknown_figure(figure)
    pair = tuple(targets) if targets else DEFAULT_PAIR
    names = [f for f in FIGURE_NAMES if f != "all"] if figure == "all" else [figure]
    report = PlotReport()
    fits: dict[str, dict[str, Any] | None] = {}

    def fit_of(name: str) -> dict[str, Any] | None:
        if name not in fits:
            rows_for_target(runs, name, method)  # no data: say so before fitting
            fits[name] = fit_for(runs, name, method)
        return fits[name]

    for name in names:
        try:
            fig, stem, drawn = draw_one(name, runs, fit_of, target, pair, method)
        except PlotError as exc:
            if figure != "all":
                raise
            report.skipped.append(f"{name}: {exc}")
            continue
        try:
            report.written += save_figure(fig, out_dir, stem, formats)
        finally:
            plt.close(fig)
        for drawn_target in drawn:
            fit = fits.get(drawn_target)
            for key, what in FIGURE_LAWS[name]:
                if fit_part(fit, key) is None:
                    reason = missing_fit_reason(fit, key, what)
                    report.missing_fits.append(f"{name} ({drawn_target}): {reason}")
    return report


def draw_one(
    name: str,
    runs: pd.DataFrame,
    fit_of: Callable[[str], dict[str, Any] | None],
    target: str | None,
    pair: tuple[str, ...],
    method: str | None,
) -> tuple[Figure, str, tuple[str, ...]]:
    """One figure, its file stem and the targets it shows."""
    if name == "fig6":
        fig = fig6(runs, {t: fit_of(t) for t in pair}, pair, method)
        return fig, "fig6_" + "_".join(pair), pair
    if target is None:
        available = ", ".join(targets_with_data(runs)) or "none"
        raise PlotError(
            f"{name} needs a target; pass --target NAME (targets with data: {available})"
        )
    if name == "batch-size":
        return batch_size_figure(runs, target, method), f"batch-size_{target}", (target,)
    draw = {"fig1": fig1, "fig7": fig7, "fig8": fig8}[name]
    return draw(runs, fit_of(target), target, method), f"{name}_{target}", (target,)


def plot_from_db(
    figure: str,
    *,
    db: str | None,
    target: str | None,
    targets: Sequence[str] | None = None,
    out_dir: str | Path = "plots",
    formats: Sequence[str] = ("png",),
    method: str | None = None,
    bootstrap: int | None = None,
    sweeps: list[str] | None = None,
    pool_sweeps: bool = False,
) -> PlotReport:
    """`scalelab plot`: the runs of `db` (of `sweeps`) and their fits, drawn by plot_figures.

    A stored fit is used only when its inputs are the current points (same fingerprint), so the
    lines stay in step with the points after new results arrived; otherwise the target is
    fitted afresh. A target whose laws cannot be fitted is drawn without them.
    """
    from scalelab import load_runs

    if figure not in FIGURE_NAMES:
        raise unknown_figure(figure)  # before reading a database that may be large

    def fit_for(runs: pd.DataFrame, name: str, method: str | None) -> dict[str, Any] | None:
        from scalelab.analysis.commands import current_fit

        options = {} if bootstrap is None else {"bootstrap": bootstrap}
        try:
            return current_fit(
                db, runs, name, store=False, method=method, pool_sweeps=pool_sweeps, **options
            )
        except FitError as exc:
            return {"notes": [str(exc)]}

    return plot_figures(
        figure,
        load_runs(db, sweeps),
        fit_for,
        target=target,
        targets=targets,
        out_dir=out_dir,
        formats=formats,
        method=method,
    )
