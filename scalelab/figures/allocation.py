"""Fig. 8: compute-optimal parameters P*(C) and examples N*(C) against compute.

At one fixed T (the paper fixes T = 50) the compute-optimal frontier says which P and N reach
the lowest error for each compute; both follow power laws in C (Chinchilla's Approach 1,
fitted to minima located between the grid's sizes, see chinchilla.py: the line is drawn over
the compute where they were located, the frontier's runs for reference). The
paper finds P* ∝ C^0.35 and N* ∝ C^0.65, where transformers give about 0.5 / 0.5. Where the
data has IsoFLOP profiles, the minima of Approach 2 and their power laws are drawn too.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scalelab.analysis.frontier import frontier_indices
from scalelab.errors import PlotError
from scalelab.figures.curves import log_grid, parametric_optimum
from scalelab.figures.style import (
    FIT_COLOR,
    PFLOP,
    add_note,
    exponent_label,
    fit_part,
    legend_inside,
    missing_fit_reason,
    paper_style,
    rows_for_target,
    settle_legends,
)

POINT_COLOR = "#c0392b"
PARAMETRIC_COLOR = "#2c7fb8"
APPROACH2_COLOR = "#31a354"


def fig8(
    runs: pd.DataFrame, fit: dict[str, Any] | None, target: str, method: str | None = None
) -> Figure:
    """P*(C) (left) and N*(C) (right) on the compute-optimal frontier at the fit's T, with the
    power-law fits and, where the parametric fit E(P, N) exists, its prediction."""
    rows = rows_for_target(runs, target, method)
    allocation = fit_part(fit, "allocation")
    epochs = float(allocation["epochs"]) if allocation else float(rows["epochs"].min())
    at_t = rows.loc[rows["epochs"] == epochs]
    frontier = at_t.iloc[frontier_indices(at_t["compute"].to_numpy(), at_t["error"].to_numpy())]
    if len(frontier) < 2:
        raise PlotError(
            f"fig8 needs two or more compute-optimal points at T = {epochs:g} for target "
            f"'{target}'; the frontier has {len(frontier)}"
        )
    compute = frontier["compute"].to_numpy(dtype=float)
    optimum = parametric_prediction(fit, frontier, epochs)
    with paper_style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.0), layout="constrained")
        panels = (
            (left, "params", "P*", "compute-optimal parameters P*"),
            (right, "examples", "N*", "compute-optimal examples N*"),
        )
        for ax, column, symbol, label in panels:
            values = frontier[column].to_numpy(dtype=float)
            draw_allocation(ax, compute, values, fit, column, symbol)
            draw_approach2(ax, fit, column, symbol)
            if optimum is not None:
                grid, by_column = optimum
                ax.plot(
                    grid / PFLOP,
                    by_column[column],
                    color=PARAMETRIC_COLOR,
                    linestyle="-.",
                    linewidth=1.0,
                    label="parametric E(P, N): "
                    + allocation_label(symbol, fit["parametric"][f"{column}_exponent"], None),
                    gid="parametric",
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("compute C (PFLOPs)")
            ax.set_ylabel(label)
            ax.set_title(f"T = {epochs:g}")
            legend_inside(ax)
        settle_legends(fig)
    return fig


def allocation_label(symbol: str, exponent: float, ci: Any) -> str:
    """'P* ∝ C^0.35 [0.30, 0.40]' with the exponent as a superscript."""
    text = exponent_label("", exponent, ci).removeprefix(" = ")
    value, _, interval = text.partition(" ")
    return f"{symbol} ∝ $C^{{{value}}}$" + (f" {interval}" if interval else "")


def draw_allocation(
    ax: Axes,
    compute: np.ndarray,
    values: np.ndarray,
    fit: dict[str, Any] | None,
    column: str,
    symbol: str,
) -> None:
    """The frontier's P (column 'params') or N ('examples'), the minima Approach 1 located
    between the grid's sizes (where the fit has them), and the fitted k·C^a dashed."""
    ax.plot(
        compute / PFLOP,
        values,
        linestyle="none",
        marker="o",
        markersize=5,
        color=POINT_COLOR,
        label="compute-optimal runs (frontier)",
        gid="run",
    )
    allocation = fit_part(fit, "allocation")
    minima = np.array((allocation or {}).get("minima") or []).reshape(-1, 3)
    if len(minima):
        ax.plot(
            minima[:, 0] / PFLOP,
            minima[:, 1 if column == "params" else 2],
            linestyle="none",
            marker=".",
            markersize=2.5,
            color=FIT_COLOR,
            label=f"{symbol} located between the sizes",
            gid="minima",
        )
    exponent = allocation.get(f"{column}_exponent") if allocation else None
    coefficient = allocation.get(f"{column}_coefficient") if allocation else None
    if exponent is None or coefficient is None:
        add_note(ax, missing_fit_reason(fit, "allocation", f"{symbol}(C)"))
        return
    # A fit stored before Approach 1 located its minima has no range: the frontier's then.
    grid = log_grid(*(allocation.get("compute_range") or (compute.min(), compute.max())))
    ax.plot(
        grid / PFLOP,
        coefficient * grid**exponent,
        color=FIT_COLOR,
        linestyle="--",
        linewidth=1.1,
        label="fit: " + allocation_label(symbol, exponent, allocation.get(f"{column}_exponent_ci")),
        gid="fit",
    )


def draw_approach2(ax: Axes, fit: dict[str, Any] | None, column: str, symbol: str) -> None:
    """Approach 2, where the fit has it: each IsoFLOP profile's minimum and their power law."""
    part = fit_part(fit, "approach2")
    if part is None:
        return
    used = [p for p in part["profiles"] if p["used"]]
    budgets = np.array([p["budget"] for p in used])
    ax.plot(
        budgets / PFLOP,
        [p[column] for p in used],
        linestyle="none",
        marker="s",
        markersize=4,
        markerfacecolor="none",
        color=APPROACH2_COLOR,
        label="IsoFLOP minima (Approach 2)",
        gid="approach2-minima",
    )
    grid = log_grid(budgets.min(), budgets.max())
    ax.plot(
        grid / PFLOP,
        part[f"{column}_coefficient"] * grid ** part[f"{column}_exponent"],
        color=APPROACH2_COLOR,
        linestyle=":",
        linewidth=1.1,
        label="Approach 2: "
        + allocation_label(symbol, part[f"{column}_exponent"], part.get(f"{column}_exponent_ci")),
        gid="approach2",
    )


def parametric_prediction(
    fit: dict[str, Any] | None, frontier: pd.DataFrame, epochs: float
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """P*(C) and N*(C) implied by E(P, N) = E + A/P^α + B/N^β, over the frontier's compute."""
    law = fit_part(fit, "parametric")
    if law is None or frontier.empty:
        return None
    # C = FLOP(f)·3·N·T and FLOP(f) is proportional to P for these models, so C = κ·P·N.
    kappa = 3.0 * epochs * float((frontier["flops"] / frontier["params"]).median())
    grid = log_grid(frontier["compute"].min(), frontier["compute"].max())
    params = parametric_optimum(law, grid / kappa)
    return grid, {"params": params, "examples": grid / kappa / params}
