"""What every figure shares: the paper's look, axis units, point selection and fit notes.

Figures are drawn from the `scalelab.load_runs` DataFrame (one row per checkpoint and target)
and from the dict of `scalelab.analysis.fit_scaling`; nothing here touches a database.
"""

from __future__ import annotations

import contextlib
import difflib
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, LogFormatterSciNotation

from scalelab.analysis.points import select_points
from scalelab.analysis.table import RIDGE_CAVEAT
from scalelab.errors import FitError, PlotError

FIT_PARTS = ("compute_law", "params_law", "examples_law", "allocation", "parametric")
FIGURE_NAMES = ("fig1", "fig6", "fig7", "fig8", "batch-size", "all")

PFLOP = 1e15  # compute axes are in PFLOPs (FLOP(f) in the MAC convention, as in the paper)

# Readable names for the targets the probes know; anything else is shown as stored.
TARGET_NAMES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "tinyimagenet": "Tiny ImageNet",
    "stl10": "STL-10",
    "imagenet1k": "ImageNet-1k",
    "synthetic-cifar10": "synthetic CIFAR-10",
    "synthetic-cifar100": "synthetic CIFAR-100",
    "upstream": "held-out pretraining",
}

# A compact version of the look of the paper's figures: small type, light grid, no top/right
# spines, so that a single-column figure stays readable when printed.
PAPER_STYLE: dict[str, Any] = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.5,
    "legend.frameon": False,
    "savefig.bbox": "tight",
    "savefig.dpi": 200,
}

MODEL_CMAP = "coolwarm"  # blue for small models, red for large ones (Zhai et al. 2022)
FIT_COLOR = "black"
BAND_COLOR = "#9e9e9e"
NOTE_WIDTH = 26  # characters per line of a legend note, so it never outgrows a panel


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Draw inside this context so the figure gets the paper's look without touching the
    caller's global matplotlib settings."""
    with mpl.rc_context(PAPER_STYLE):
        yield


def target_label(target: str) -> str:
    return TARGET_NAMES.get(target, target)


def unknown_figure(name: str) -> PlotError:
    close = difflib.get_close_matches(name, FIGURE_NAMES, n=1, cutoff=0.4)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return PlotError(f"unknown figure '{name}'; {hint}(choose from {', '.join(FIGURE_NAMES)})")


def rows_for_target(runs: pd.DataFrame, target: str, method: str | None = None) -> pd.DataFrame:
    """The rows of `runs` a figure of `target` draws: exactly the points a fit would use, with
    a column `run` that numbers the runs (jobs) as the analysis does.

    The choice is the analysis' own (scalelab.analysis.points.select_points: diverged jobs and
    C = 0 baselines left out, one probe method), so that a fitted line and its dots always
    describe the same data; where it finds none, the PlotError says what exists.
    """
    try:
        points = select_points(runs, target, method)
    except FitError as exc:
        raise PlotError(str(exc)) from exc
    chosen = runs.loc[(runs["target"] == target) & (runs["method"] == points.method)]
    # The analysis' run id (one job: a (model, N, seed) trajectory) comes along for fig1's lines.
    return chosen.merge(points.frame[["checkpoint_id", "run"]], on="checkpoint_id")


def targets_with_data(runs: pd.DataFrame) -> list[str]:
    return sorted(runs.loc[runs["error"].notna(), "target"].unique())


class ErrorAxis:
    """How an error column is shown: percent for error rates, as stored for losses.

    Probe errors are fractions in (0, 1]; imported results may be losses, which can exceed 1
    and are shown unscaled rather than as a misleading percentage.
    """

    def __init__(self, errors: pd.Series, target: str, method: str | None = None) -> None:
        # Ridge numbers say in the legend that they are not the paper's (LION) protocol.
        self.caveat = RIDGE_CAVEAT if method == "ridge" else None
        self.is_rate = bool((errors <= 1.0).all())
        self.factor = 100.0 if self.is_rate else 1.0
        name = target_label(target)
        kind = "held-out pretraining" if target == "upstream" else f"{name} test"
        loss = name if name.endswith("loss") else f"{name} loss"
        self.label = f"{kind} error (%)" if self.is_rate else loss

    def __call__(self, values: Any) -> np.ndarray:
        return np.asarray(values, dtype=float) * self.factor

    def note(self, ax: Axes) -> None:
        """The probe's caveat as the panel's first legend entry, if it has one."""
        if self.caveat:
            add_note(ax, self.caveat)


def fit_part(fit: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """One law of a fit result, or None where it could not be computed (or no fit exists)."""
    if fit is None:
        return None
    part = fit.get(key)
    return part if isinstance(part, dict) else None


def missing_fit_reason(fit: dict[str, Any] | None, key: str, what: str) -> str:
    """Why a fitted line is absent, for the figure's legend and the command's output: the
    fit's note about this law ('params_law: ...'), or its note when the whole fit failed."""
    if fit is None:
        return f"no {what} fit (no fit result was given)"
    notes = [str(n) for n in fit.get("notes") or []]
    about = [n.removeprefix(f"{key}: ") for n in notes if n.startswith(f"{key}: ")]
    if not about and not any(isinstance(fit.get(k), dict) for k in FIT_PARTS):
        about = notes
    return f"no {what} fit: {about[0]}" if about else f"no {what} fit in the fit result"


def format_exponent(value: float) -> str:
    """Exponents as written in legends; tests compare this text with the stored fit."""
    return f"{value:.2f}"


def exponent_label(symbol: str, value: float, ci: Sequence[float] | None) -> str:
    text = f"{symbol} = {format_exponent(value)}"
    if ci is not None and len(ci) == 2 and all(np.isfinite(ci)):
        text += f" [{format_exponent(ci[0])}, {format_exponent(ci[1])}]"
    return text


def add_note(ax: Axes, text: str) -> None:
    """A legend entry without a marker: where a fit is missing, the legend says so."""
    ax.plot([], [], linestyle="none", label=textwrap.fill(text, NOTE_WIDTH), gid="note")


LEGEND_STYLE: dict[str, Any] = {"frameon": True, "edgecolor": "none", "handlelength": 1.6}


def legend_inside(ax: Axes) -> None:
    """The legend in the corner that covers the fewest points, on a light backing; where every
    corner covers a plotted point (the demo's batch-size figure hid its batch-64 point), the
    legend goes outside the axes, to their right."""
    legend = ax.legend(loc="best", framealpha=0.85, **LEGEND_STYLE)
    if _points_under(ax, legend):
        _move_out(ax)


def settle_legends(fig: Figure) -> None:
    """Once every panel of ``fig`` has its legend (legend_inside): a legend moved outside
    narrows the panels beside it in the layout, which can bring their points under a legend
    placed earlier (the demo's Fig. 8 hid its first compute-optimal run so); move those out
    too, until no legend inside a panel covers a point."""
    for _ in fig.axes:
        fig.draw_without_rendering()  # one layout per pass, read by every panel's check
        covering = [
            ax
            for ax in fig.axes
            if ax.get_legend() is not None
            and ax.get_legend().get_window_extent().x1 <= ax.get_window_extent().x1
            and _covers(ax, ax.get_legend())
        ]
        if not covering:
            return
        for ax in covering:
            _move_out(ax)


def _move_out(ax: Axes) -> None:
    """The legend of ``ax`` outside the axes, to their right."""
    ax.get_legend().remove()
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **LEGEND_STYLE)


def _points_under(ax: Axes, legend: Any) -> bool:
    """Whether any marker or line vertex of ``ax`` lies under ``legend``, measured after the
    figure's layout has placed the axes."""
    ax.figure.draw_without_rendering()
    return _covers(ax, legend)


def _covers(ax: Axes, legend: Any) -> bool:
    """Whether any marker or line vertex of ``ax`` (data coordinates) lies under ``legend`` in
    the layout last drawn. The legend's box is widened by the largest marker's radius: a marker
    whose centre sits just outside it is half hidden (the demo's Fig. 8 hid its first
    compute-optimal run so)."""
    box = legend.get_window_extent().padded(_marker_radius(ax))
    parts = [line.get_xydata() for line in ax.get_lines()]
    parts += [c.get_offsets() for c in ax.collections if c.get_offset_transform() == ax.transData]
    points = np.concatenate([np.asarray(p, float).reshape(-1, 2) for p in [*parts, []]])
    shown = ax.transData.transform(points[np.isfinite(points).all(axis=1)])
    return box.count_contains(shown) > 0


def _marker_radius(ax: Axes) -> float:
    """The largest marker radius of ``ax`` in display pixels (sizes are in points)."""
    radii = [line.get_markersize() / 2 for line in ax.get_lines() if line.get_marker() != "None"]
    radii += [np.sqrt(c.get_sizes()).max() / 2 for c in ax.collections if len(c.get_sizes())]
    return max(radii, default=0.0) * ax.figure.dpi / 72


def human_count(n: float) -> str:
    """1_200_000 -> '1.2M': examples and parameters as the paper writes them."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.3g}"


def log_log(ax: Axes) -> None:
    """Log axes; the error axis (y) is labelled with plain numbers (30, not 3×10¹), and its
    minor ticks too when it spans less than two decades, as errors usually do."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    # x (compute, P, N) spans decades: label its minor ticks only on a very short axis, where
    # matplotlib's default labels 2, 3, 4, 6 x 10^k on top of each other near one decade.
    ax.xaxis.set_minor_formatter(LogFormatterSciNotation(minor_thresholds=(0.5, 0.2)))
