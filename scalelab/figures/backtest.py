"""The backtest figure: the laws fitted below a compute cut, and the held-out runs above it.

Left: error against compute, the fitted points, the held-out points, the compute law fitted
on the kept points extended over the held-out range with its 95% bootstrap band, and the cut.
Right (where Approach 1 or 2 was fitted): P*(C) of each approach extended the same way, with
the optima measured on the kept points and on the held-out ones.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scalelab.figures.curves import compute_law_band, compute_law_curve, log_grid
from scalelab.figures.style import (
    BAND_COLOR,
    FIT_COLOR,
    PFLOP,
    add_note,
    exponent_label,
    log_log,
    missing_fit_reason,
    paper_style,
    target_label,
)

FITTED_COLOR = "#7f7f7f"
HELDOUT_COLOR = "#c0392b"
APPROACH_STYLES = {"allocation": ("Approach 1", "--", "o"), "approach2": ("Approach 2", "-.", "s")}


def backtest_figure(runs: pd.DataFrame, result: dict[str, Any]) -> Figure:
    """Draw a result of `scalelab.analysis.backtest.backtest` over the runs it was made from."""
    fit = result["fit"]
    rows = runs[(runs["target"] == result["target"]) & (runs["method"] == fit["method"])]
    fitted = rows[rows["checkpoint_id"].isin(fit["checkpoint_ids"])]
    held = rows[rows["checkpoint_id"].isin(result["holdout"]["checkpoint_ids"])]
    approaches = [k for k in APPROACH_STYLES if fit.get(k)]
    with paper_style():
        fig, axes = plt.subplots(
            1,
            1 + bool(approaches),
            figsize=(4.2 * (1 + bool(approaches)), 3.2),
            squeeze=False,
            layout="constrained",
        )
        draw_error_panel(axes[0, 0], result, fitted, held)
        if approaches:
            draw_allocation_panel(axes[0, 1], result, approaches)
        fig.suptitle(f"backtest on {target_label(result['target'])}", fontsize=9)
    return fig


def _cut(ax: Axes, result: dict[str, Any]) -> None:
    ax.axvline(
        result["holdout"]["max_fitted_compute"] / PFLOP,
        color=FITTED_COLOR,
        linestyle=":",
        linewidth=0.9,
        label="cut",
        gid="cut",
    )


def draw_error_panel(
    ax: Axes, result: dict[str, Any], fitted: pd.DataFrame, held: pd.DataFrame
) -> None:
    """Error against compute: the compute law of the kept points, extrapolated."""
    for frame, color, label, gid in (
        (fitted, FITTED_COLOR, f"fitted ({len(fitted)})", "fitted"),
        (held, HELDOUT_COLOR, f"held out ({len(held)})", "heldout"),
    ):
        ax.plot(
            frame["compute"] / PFLOP,
            frame["error"],
            linestyle="none",
            marker="o",
            markersize=2.5,
            alpha=0.7,
            color=color,
            label=label,
            gid=gid,
        )
    fit = result["fit"]
    law = fit.get("compute_law")
    if law is None:
        add_note(ax, missing_fit_reason(fit, "compute_law", "compute-law"))
    else:
        grid = log_grid(fitted["compute"].min(), held["compute"].max())
        band = compute_law_band(fit, grid)
        if band is not None:
            ax.fill_between(
                grid / PFLOP,
                band[0],
                band[1],
                color=BAND_COLOR,
                alpha=0.3,
                linewidth=0,
                label="95% band",
                gid="band",
            )
        ax.plot(
            grid / PFLOP,
            compute_law_curve(law, grid),
            color=FIT_COLOR,
            linestyle="--",
            linewidth=1.1,
            label="compute law, " + exponent_label("α", law["alpha"], None),
            gid="fit",
        )
        score = next((r for r in result["laws"] if r["law"] == "compute_law"), None)
        if score and not score.get("note"):
            ax.set_title(f"compute law: held-out RMS log error {score['rms_log_error']:.3g}")
    _cut(ax, result)
    log_log(ax)
    ax.set_xlabel("compute C (PFLOPs)")
    ax.set_ylabel("error")
    ax.legend(loc="upper right")  # low error at high compute: that corner is free


def draw_allocation_panel(ax: Axes, result: dict[str, Any], approaches: list[str]) -> None:
    """P*(C) of Approaches 1 and 2 fitted on the kept points, against the held-out optima."""
    fit = result["fit"]
    held_rows = {r["law"]: r for r in result["laws"] if r["quantity"] == "P*" and "compute" in r}
    computes = [p["compute"] for p in fit["frontier"]]
    for rows in held_rows.values():
        computes += rows["compute"]
    grid = log_grid(min(computes), max(computes))
    for name in approaches:
        label, style, marker = APPROACH_STYLES[name]
        part = fit[name]
        if name == "allocation":
            at = [p for p in fit["frontier"] if p["epochs"] == part["epochs"]]
            kept_c, kept_p = [p["compute"] for p in at], [p["params"] for p in at]
        else:
            used = [p for p in part["profiles"] if p["used"]]
            kept_c, kept_p = [p["budget"] for p in used], [p["params"] for p in used]
        ax.plot(
            np.array(kept_c) / PFLOP,
            kept_p,
            linestyle="none",
            marker=marker,
            markersize=3,
            color=FITTED_COLOR,
            label=f"{label}: fitted optima",
            gid=f"{name}-fitted",
        )
        ax.plot(
            grid / PFLOP,
            part["params_coefficient"] * grid ** part["params_exponent"],
            color=FIT_COLOR,
            linestyle=style,
            linewidth=1.0,
            label=f"{label}: P* ∝ C^{part['params_exponent']:.2f}",
            gid=f"{name}-fit",
        )
        row = held_rows.get(name)
        if row is not None:
            ax.plot(
                np.array(row["compute"]) / PFLOP,
                row["observed"],
                linestyle="none",
                marker=marker,
                markersize=4,
                color=HELDOUT_COLOR,
                label=f"{label}: held-out optima",
                gid=f"{name}-heldout",
            )
    _cut(ax, result)
    log_log(ax)
    ax.set_xlabel("compute C (PFLOPs)")
    ax.set_ylabel("compute-optimal parameters P*")
    ax.set_title("P*(C) fitted below the cut")
    ax.legend(loc="lower right")  # P* grows with compute: that corner is free
