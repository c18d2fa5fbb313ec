"""Approach 1 on a grid: a frontier that runs along the grid's largest N (or P) is flagged,
an interval that no resample widens is flagged, and E(P) is read at the largest N that enough
model sizes reached."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.analysis import fit_scaling
from scalelab.analysis.synthetic import KnownLaw, synthetic_runs

LAW = KnownLaw()
CLOSED_FORM = LAW.beta / (LAW.alpha + LAW.beta)  # P*(C) exponent of E + A/P^a + B/N^b


def _fit(params, examples) -> dict:
    runs = synthetic_runs(params=params, examples=examples, epochs=(50,), noise=0.0, target="c")
    return fit_scaling(runs, "c", bootstrap=0)


def test_a_frontier_along_the_largest_n_is_flagged() -> None:
    result = _fit(tuple(np.geomspace(1e6, 1e8, 6)), tuple(np.geomspace(1e4, 1e7, 6)))
    warning = (
        "allocation: the frontier at T=50 runs along the grid's largest N (1e+07) for 40% of "
        "its log-compute range (6 of 17 points), where it can grow only P: P*(C) and N*(C) "
        "follow the grid's edge there, not the optimum; train the smaller models on more "
        "examples until the frontier leaves that edge"
    )
    assert result["allocation"]["grid_edge"] == [warning]
    assert warning in result["notes"]
    assert abs(result["allocation"]["params_exponent"] - CLOSED_FORM) > 0.02


def test_a_frontier_along_the_largest_p_is_flagged() -> None:
    result = _fit(tuple(np.geomspace(1e5, 1e7, 9)), tuple(np.geomspace(1e4, 1e10, 16)))
    [warning] = result["allocation"]["grid_edge"]
    assert warning.startswith(
        "allocation: the frontier at T=50 runs along the grid's largest P (1e+07) for 30% "
    )
    assert warning.endswith("train larger models until the frontier leaves that edge")


def test_a_grid_wide_enough_gives_no_warning_and_the_closed_form() -> None:
    result = _fit(tuple(np.geomspace(1e5, 1e8, 13)), tuple(np.geomspace(1e4, 1e11, 22)))
    assert result["allocation"]["grid_edge"] == []
    assert abs(result["allocation"]["params_exponent"] - CLOSED_FORM) < 0.01


def test_the_params_law_is_read_where_every_model_size_was_trained() -> None:
    params, examples = tuple(np.geomspace(1e6, 1e8, 5)), tuple(np.geomspace(1e4, 1e7, 5))
    grid = synthetic_runs(params=params, examples=examples, epochs=(50,), target="c")
    # The two smallest models also on 10x the largest N: E(P) keeps 5 sizes at N = 1e7.
    extra = synthetic_runs(params=params[:2], examples=(1e8,), epochs=(50,), target="c")
    extra[["checkpoint_id", "job_id"]] += 1000
    result = fit_scaling(pd.concat([grid, extra]), "c", bootstrap=0)
    assert result["params_law"]["examples"] == 1e7
    assert result["params_law"]["n_points"] == 5
    assert result["examples_law"]["params"] == 1e8


def _seeded_fit(noise: float) -> dict:
    runs = synthetic_runs(
        params=tuple(np.geomspace(1e5, 1e8, 7)),
        examples=tuple(np.geomspace(1e4, 1e11, 15)),
        epochs=(50,),
        seeds=(0, 1),
        noise=noise,
        target="c",
    )
    return fit_scaling(runs, "c", bootstrap=200)


def test_an_approach_1_interval_without_width_is_flagged() -> None:
    # Seed noise far below the error gaps between grid points: every resample keeps the same
    # frontier, so the interval is the estimate itself.
    result = _seeded_fit(noise=1e-6)
    allocation = result["allocation"]
    low, high = allocation["params_exponent_ci"]
    assert low == high == allocation["params_exponent"]
    note = (
        f"allocation: every bootstrap resample kept the same {allocation['n_points']} runs on "
        "the T=50 frontier, so Approach 1's intervals have no width: they show the seeds' "
        "noise, not how coarsely the grid's model sizes and dataset sizes locate P*(C) and "
        "N*(C)"
    )
    assert note in result["notes"]


def test_an_approach_1_interval_that_resamples_widen_is_not_flagged() -> None:
    result = _seeded_fit(noise=0.05)
    low, high = result["allocation"]["params_exponent_ci"]
    assert low < high
    assert not any("intervals have no width" in note for note in result["notes"])
