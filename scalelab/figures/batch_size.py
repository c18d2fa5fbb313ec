"""The large-batch study: downstream error against pretraining batch size, one line per T.

The paper finds that, unlike for CNNs, larger batches help MLPs at a fixed number of epochs
(its Sec. 4.3); this figure shows whether a sweep reproduces that.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from scalelab.errors import PlotError
from scalelab.figures.style import (
    ErrorAxis,
    human_count,
    legend_inside,
    log_log,
    paper_style,
    rows_for_target,
)

LINESTYLES = ("-", "--", ":", "-.")


def batch_size_figure(runs: pd.DataFrame, target: str, method: str | None = None) -> Figure:
    """Error on `target` against batch size for every (model, N) trained with several batch
    sizes; one line per epoch count T (averaged over seeds), coloured from short to long."""
    rows = _every_setting(runs, target, method)
    studies = batch_size_studies(rows)
    if not studies:
        raise PlotError(
            f"no batch-size study for target '{target}': no (model, N) was trained with two or "
            "more batch sizes; enqueue a grid with several train.batch_size values"
        )
    errors = ErrorAxis(rows["error"], target, rows["method"].iloc[0])
    epochs = np.sort(pd.concat([s["epochs"] for _, s in studies]).unique())
    colour = plt.get_cmap("viridis")
    norm = LogNorm(vmin=epochs[0], vmax=epochs[-1] * 1.6)  # the map's last yellow is too pale
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.0, 3.2), layout="constrained")
        errors.note(ax)
        for index, (name, study) in enumerate(studies):
            for t, at_t in study.groupby("epochs", sort=True):
                mean = at_t.groupby("batch_size", sort=True)["error"].mean()
                label = f"T = {t:g}" if len(studies) == 1 else f"{name}, T = {t:g}"
                ax.plot(
                    mean.index.to_numpy(),
                    errors(mean.to_numpy()),
                    color=colour(norm(t)),
                    linestyle=LINESTYLES[index % len(LINESTYLES)],
                    marker="o",
                    markersize=4,
                    linewidth=1.1,
                    label=label,
                    gid="run",
                )
        log_log(ax)
        ax.xaxis.set_major_locator(LogLocator(base=2))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda b, _: f"{b:g}"))
        ax.set_xlabel("pretraining batch size (examples)")
        ax.set_ylabel(errors.label)
        if len(studies) == 1:
            ax.set_title(studies[0][0])
        legend_inside(ax)
    return fig


def _every_setting(runs: pd.DataFrame, target: str, method: str | None) -> pd.DataFrame:
    """The rows a fit of `target` would draw from, at every hyper-parameter setting.

    A fit keeps one setting per (model, N, T) (analysis.points.select_settings); a batch-size
    study is the comparison between the settings that rule chooses from, so it needs them all.
    """
    chosen = rows_for_target(runs, target, method)  # the fit's checks and its probe method
    rows = runs.loc[(runs["target"] == target) & (runs["method"] == chosen["method"].iloc[0])]
    return rows.loc[(rows["status"] != "diverged") & (rows["compute"] > 0)]


def batch_size_studies(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The (sweep, model, N) groups with two or more batch sizes, named 'B-6/Wi-1024, N = 1.2M'
    (prefixed 'SWEEP: ' when the rows come from several sweeps). Each sweep's study is its own:
    a run of another sweep at another batch size never joins its line."""
    sized = rows.loc[rows["batch_size"].notna()]
    several = sized["sweep"].nunique() > 1
    studies = []
    for (sweep, model, examples), group in sized.groupby(["sweep", "model", "examples"]):
        if group["batch_size"].nunique() >= 2:
            name = f"{model}, N = {human_count(float(examples))}"
            studies.append((f"{sweep}: {name}" if several else name, group))
    return studies
