"""Fig. 1 and Fig. 6: downstream error against compute, with the fitted compute law.

The grammar follows Zhai et al. (2022) and the paper's Fig. 1: log-log axes, colour = model
size (blue small to red large), marker size = pretraining examples N, a line joins the
checkpoints of one run across epochs T, the compute law E(C) = a(b+C)^-α + E∞ dashed, with α
and its bootstrap interval in the legend and the bootstrap band shaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from scalelab.figures.curves import compute_law_band, compute_law_curve, log_grid
from scalelab.figures.style import (
    BAND_COLOR,
    FIT_COLOR,
    MODEL_CMAP,
    PFLOP,
    ErrorAxis,
    add_note,
    exponent_label,
    fit_part,
    human_count,
    legend_inside,
    log_log,
    missing_fit_reason,
    paper_style,
    rows_for_target,
    settle_legends,
    target_label,
)

MARKER_AREA = (12.0, 80.0)  # points², smallest to largest N


def fig1(
    runs: pd.DataFrame, fit: dict[str, Any] | None, target: str, method: str | None = None
) -> Figure:
    """Error on `target` against compute for every run, with the fitted compute law.

    `fit` is the dict of `scalelab.analysis.fit_scaling` for the same target (or None: the
    points are drawn and the legend says the fit is missing). `method` picks the probe method
    where a target has several.
    """
    rows = rows_for_target(runs, target, method)
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.4, 3.3), layout="constrained")
        mappable = draw_compute_panel(ax, rows, fit, target, model_norm(rows["params"]))
        add_size_colorbar(fig, mappable, ax)
        settle_legends(fig)
    return fig


def fig6(
    runs: pd.DataFrame,
    fits: dict[str, dict[str, Any] | None],
    targets: Sequence[str] = ("cifar10", "imagenet1k"),
    method: str | None = None,
) -> Figure:
    """Fig. 1 for several targets side by side (the paper's Fig. 6: CIFAR-10 and ImageNet-1k).

    `fits` maps each target to its fit (or None). All panels share one colour scale, so a
    colour means the same model size in every panel.
    """
    per_target = [rows_for_target(runs, t, method) for t in targets]
    norm = model_norm(pd.concat([r["params"] for r in per_target]))
    with paper_style():
        fig, axes = plt.subplots(
            1, len(targets), figsize=(3.6 * len(targets) + 0.6, 3.3), layout="constrained"
        )
        axes = np.atleast_1d(axes)
        mappable = None
        for ax, target, rows in zip(axes, targets, per_target, strict=True):
            mappable = draw_compute_panel(ax, rows, fits.get(target), target, norm)
            ax.set_title(target_label(target))
        add_size_colorbar(fig, mappable, list(axes))
        settle_legends(fig)
    return fig


def model_norm(params: pd.Series) -> LogNorm:
    """Colour scale over log P; a single model size gets the middle of the map."""
    low, high = float(params.min()), float(params.max())
    if low == high:
        low, high = low / 2, high * 2
    return LogNorm(vmin=low, vmax=high)


def draw_compute_panel(
    ax: Axes,
    rows: pd.DataFrame,
    fit: dict[str, Any] | None,
    target: str,
    norm: LogNorm,
) -> ScalarMappable:
    """Draw one target's runs and compute law on `ax`; return the colour scale for a colorbar.

    Run lines carry gid "run", the fitted law "fit", the band "band", legend notes "note".
    """
    errors = ErrorAxis(rows["error"], target, rows["method"].iloc[0])
    errors.note(ax)
    cmap = plt.get_cmap(MODEL_CMAP)
    area = marker_area(rows["examples"])

    # One line per run (a job: one model and N, its checkpoints across T), small models first.
    ordered = rows.sort_values(["params", "examples", "run", "epochs"])
    for _, run in ordered.groupby("run", sort=False):
        colour = cmap(norm(float(run["params"].iloc[0])))
        ax.plot(
            run["compute"].to_numpy() / PFLOP,
            errors(run["error"].to_numpy()),
            color=colour,
            linewidth=0.8,
            alpha=0.85,
            marker="o",
            markersize=float(np.sqrt(area(run["examples"].iloc[0]))),
            markeredgecolor="0.35",  # keeps the pale middle of the colour map visible
            markeredgewidth=0.3,
            gid="run",
        )

    draw_compute_law(ax, fit, rows, errors)
    add_size_legend_entries(ax, rows["examples"], area)
    log_log(ax)
    ax.set_xlabel("compute C (PFLOPs)")
    ax.set_ylabel(errors.label)
    legend_inside(ax)
    return ScalarMappable(norm=norm, cmap=cmap)


def draw_compute_law(
    ax: Axes, fit: dict[str, Any] | None, rows: pd.DataFrame, errors: ErrorAxis
) -> None:
    law = fit_part(fit, "compute_law")
    if law is None:
        add_note(ax, missing_fit_reason(fit, "compute_law", "compute-law"))
        return
    compute = log_grid(rows["compute"].min(), rows["compute"].max())
    band = compute_law_band(fit, compute)
    if band is None:
        add_note(ax, missing_band_reason(fit))
    else:
        ax.fill_between(
            compute / PFLOP,
            errors(band[0]),
            errors(band[1]),
            color=BAND_COLOR,
            alpha=0.3,
            linewidth=0,
            label="95% bootstrap band",
            gid="band",
        )
    predicted = compute_law_curve(law, compute)
    ax.plot(
        compute / PFLOP,
        errors(predicted),
        color=FIT_COLOR,
        linestyle="--",
        linewidth=1.1,
        label="fit: " + exponent_label("α", law["alpha"], law.get("alpha_ci")),
        gid="fit",
    )


def missing_band_reason(fit: dict[str, Any]) -> str:
    bootstrap = fit.get("bootstrap") or {}
    resamples = bootstrap.get("resamples", 0)
    if not resamples:
        return "no bootstrap band: the fit has no resamples (--bootstrap 0)"
    fitted = (bootstrap.get("succeeded") or {}).get("compute_law", 0)
    return f"no bootstrap band: only {fitted} of {resamples} resamples could be fitted"


def marker_area(examples: pd.Series):
    """Marker area grows with log N, from the smallest to the largest N of the data."""
    low, high = np.log10(float(examples.min())), np.log10(float(examples.max()))

    def area(n: float) -> float:
        if high == low:
            return float(np.mean(MARKER_AREA))
        share = (np.log10(n) - low) / (high - low)
        return MARKER_AREA[0] + share * (MARKER_AREA[1] - MARKER_AREA[0])

    return area


def add_size_legend_entries(ax: Axes, examples: pd.Series, area) -> None:
    """Grey markers of the sizes used for N: at most four, smallest and largest included."""
    sizes = np.sort(examples.unique())
    if len(sizes) > 4:
        sizes = sizes[np.unique(np.linspace(0, len(sizes) - 1, 4).round().astype(int))]
    for n in sizes:
        ax.add_line(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                color="#777777",
                markersize=float(np.sqrt(area(n))),
                label=f"N = {human_count(float(n))}",
                gid="size",
            )
        )


def add_size_colorbar(fig: Figure, mappable: ScalarMappable | None, ax: Any) -> None:
    colorbar = fig.colorbar(mappable, ax=ax, pad=0.02, fraction=0.05)
    colorbar.set_label("parameters P")
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda p, _: human_count(p)))
    colorbar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda p, _: ""))
