"""Ridge-probe numbers say, wherever they are shown, that ridge is not the paper's protocol."""

from __future__ import annotations

import matplotlib
import pytest

from scalelab.analysis import fit_scaling, render_fit
from scalelab.analysis.synthetic import synthetic_runs
from scalelab.analysis.table import RIDGE_CAVEAT
from scalelab.figures import fig1, fig7

matplotlib.use("Agg")


def legend(ax) -> list[str]:
    return [t.get_text().replace("\n", " ") for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize(("method", "labelled"), [("ridge", True), ("lion", False)])
def test_the_fit_table_and_figure_legends_label_ridge(method: str, labelled: bool) -> None:
    runs = synthetic_runs(target="cifar10").assign(method=method)
    fit = fit_scaling(runs, "cifar10", bootstrap=0)
    assert (RIDGE_CAVEAT in render_fit(fit)) == labelled
    assert RIDGE_CAVEAT == "ridge: a closed-form probe, not the paper's LION protocol"
    compute_axes = fig1(runs, fit, "cifar10").axes[0]
    left, right = fig7(runs, fit, "cifar10").axes
    for ax in (compute_axes, left, right):
        assert (legend(ax)[0] == RIDGE_CAVEAT) == labelled
