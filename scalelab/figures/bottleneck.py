"""Fig. 7: error against parameters (P-bottlenecked) and against examples (N-bottlenecked).

Each panel holds one axis of the study fixed at its largest value, so that the other one is
the bottleneck, and draws the fitted law E(x) = a·x^-α + E∞ dotted with its exponent.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scalelab.analysis.estimates import (
    BottleneckPoints,
    examples_law_points,
    params_law_points,
)
from scalelab.analysis.points import PointArrays, select_points
from scalelab.errors import PlotError
from scalelab.figures.curves import log_grid, power_law_curve
from scalelab.figures.style import (
    FIT_COLOR,
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
)

POINT_COLOR = "#3b6fb6"


def fig7(
    runs: pd.DataFrame, fit: dict[str, Any] | None, target: str, method: str | None = None
) -> Figure:
    """Left: each model's error (seed mean of its selected setting) at the largest N and T,
    with E(P). Right: each N's error with the largest model at its largest T, with E(N)."""
    rows = rows_for_target(runs, target, method)
    errors = ErrorAxis(rows["error"], target, rows["method"].iloc[0])
    # The points the fit uses, chosen by the analysis' own rule, so the line fits the dots.
    data = PointArrays.from_points(select_points(rows, target))
    by_params, by_examples = params_law_points(data), examples_law_points(data)
    if len(by_params.x) < 2 and len(by_examples.x) < 2:
        raise PlotError(
            f"fig7 needs two or more model sizes or values of N for target '{target}'; "
            "the data has one of each"
        )
    largest = rows.loc[rows["params"] == by_examples.fixed["params"], "model"].iloc[0]
    with paper_style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.0), layout="constrained")
        draw_bottleneck(left, by_params, fit, "params_law", "α_P", errors)
        left.set_xlabel("parameters P")
        n, t = human_count(by_params.fixed["examples"]), by_params.fixed["epochs"]
        left.set_title(f"P-bottlenecked (N = {n}, T = {t:g})")
        draw_bottleneck(right, by_examples, fit, "examples_law", "α_N", errors)
        right.set_xlabel("pretraining examples N")
        right.set_title(f"N-bottlenecked ({largest}, T = {by_examples.fixed['epochs']:g})")
        left.set_ylabel(errors.label)
        settle_legends(fig)
    return fig


def draw_bottleneck(
    ax: Axes,
    points: BottleneckPoints,
    fit: dict[str, Any] | None,
    key: str,
    symbol: str,
    errors: ErrorAxis,
) -> None:
    errors.note(ax)
    ax.plot(
        points.x,
        errors(points.error),
        linestyle="none",
        marker="o",
        markersize=5,
        color=POINT_COLOR,
        label="best run",
        gid="run",
    )
    law = fit_part(fit, key)
    if law is None:
        what = "E(P)" if key == "params_law" else "E(N)"
        add_note(ax, missing_fit_reason(fit, key, what))
    else:
        x = log_grid(points.x.min(), points.x.max())
        ax.plot(
            x,
            errors(power_law_curve(law, x)),
            color=FIT_COLOR,
            linestyle=":",
            linewidth=1.4,
            label="fit: " + exponent_label(symbol, law["alpha"], law.get("alpha_ci")),
            gid="fit",
        )
    log_log(ax)
    legend_inside(ax)
