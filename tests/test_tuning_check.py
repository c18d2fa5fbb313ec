"""`scalelab fit` says when a larger model trained worse upstream than a smaller one.

The demo's first grids trained every size at one learning rate, and B-1/Wi-128 reached a worse
held-out error than B-1/Wi-64 at the same N and T: its points measured the recipe. The
frames here are built by hand, so the expected inversion is known without the check's code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import fit_scaling
from scalelab.analysis.points import select_points
from scalelab.analysis.synthetic import synthetic_runs
from scalelab.analysis.tuning import INVERSION_TOLERANCE, size_inversion_notes

PARAMS = (1e6, 4e6, 1.6e7)
EXAMPLES = (1e4, 1e5, 1e6)


def runs_with_upstream() -> pd.DataFrame:
    """A product grid whose upstream error falls with P at every (N, T), as it should."""
    runs = synthetic_runs(params=PARAMS, examples=EXAMPLES, epochs=(1, 2), seeds=(0, 1))
    runs["upstream_error"] = 0.9 - 0.05 * runs["params"].rank(method="dense")
    return runs


def tuning_notes(runs: pd.DataFrame) -> list[str]:
    result = fit_scaling(runs, "synthetic", bootstrap=0)
    return [n for n in result["notes"] if n.startswith("tuning:")]


def worsen(runs: pd.DataFrame, params: float, examples: float, epochs: float, by: float) -> None:
    at = (runs["params"] == params) & (runs["examples"] == examples) & (runs["epochs"] == epochs)
    runs.loc[at, "upstream_error"] += by


def test_a_recipe_that_suits_every_size_gives_no_note() -> None:
    assert tuning_notes(runs_with_upstream()) == []


def test_the_worst_inversion_is_named_with_its_errors_and_the_count() -> None:
    runs = runs_with_upstream()
    # The largest model (upstream 0.75) ends 0.03 and 0.025 above the middle one (0.80) at
    # two (N, T): the larger gap is the one named.
    worsen(runs, 1.6e7, 1e5, 1, 0.08)
    worsen(runs, 1.6e7, 1e6, 2, 0.075)
    assert tuning_notes(runs) == [
        "tuning: at N=100000, T=1, synthetic-1.6e+07 (16,000,000 parameters) reached a higher "
        "upstream held-out error than the smaller synthetic-4e+06 (0.8300 against 0.8000, "
        "seed means; 2 (N, T) with such an inversion): a larger model that trains worse "
        "points to a learning rate or batch size that suits only the smaller models, and the "
        "laws through its points measure the recipe; sweep lr in the grid (the fit keeps each "
        "model's best setting per N and T)"
    ]


def test_the_smaller_model_compared_is_the_best_of_the_smaller_ones() -> None:
    runs = runs_with_upstream()
    # The middle model ends 0.01 above the smallest (within the tolerance), the largest 0.015
    # above the middle: only against the best smaller model (0.85) is its gap 0.025.
    worsen(runs, 4e6, 1e4, 1, 0.06)
    worsen(runs, 1.6e7, 1e4, 1, 0.125)
    (note,) = tuning_notes(runs)
    assert "synthetic-1.6e+07 (16,000,000 parameters) reached a higher" in note
    assert "than the smaller synthetic-1e+06 (0.8750 against 0.8500" in note


@pytest.mark.parametrize("gap", [0.0, INVERSION_TOLERANCE / 2])
def test_a_gap_within_the_seed_noise_is_not_flagged(gap: float) -> None:
    runs = runs_with_upstream()
    worsen(runs, 1.6e7, 1e5, 1, 0.05 + gap)  # equal to the middle model, then a little worse
    assert tuning_notes(runs) == []


def test_seeds_are_averaged_before_comparing() -> None:
    runs = runs_with_upstream()
    one_seed = (runs["params"] == 1.6e7) & (runs["examples"] == 1e5) & (runs["seed"] == 0)
    runs.loc[one_seed & (runs["epochs"] == 1), "upstream_error"] += 0.09  # mean: +0.045
    assert tuning_notes(runs) == []


def test_the_check_reads_each_models_best_setting_not_the_one_the_fit_kept() -> None:
    runs = runs_with_upstream().assign(setting="a", validation_error=0.5)
    other = runs.assign(setting="b", validation_error=0.4, job_id=runs["job_id"] + 10_000)
    other["checkpoint_id"] += 10_000
    # Setting b probes better (the fit keeps it) but trains the largest model worse upstream
    # at one (N, T); setting a trains it well there, so the grid holds a recipe that suits it.
    worsen(other, 1.6e7, 1e5, 1, 0.08)
    both = pd.concat([runs, other], ignore_index=True)
    kept = fit_scaling(both, "synthetic", bootstrap=0)
    assert set(both.loc[both["checkpoint_id"].isin(kept["checkpoint_ids"]), "setting"]) == {"b"}
    assert tuning_notes(both) == []
    worsen(runs, 1.6e7, 1e5, 1, 0.08)  # now neither setting trains it well
    (note,) = tuning_notes(pd.concat([runs, other], ignore_index=True))
    assert note.startswith("tuning: at N=100000, T=1, synthetic-1.6e+07")


def test_points_kept_for_a_backtest_are_checked_in_their_own_cells_only() -> None:
    runs = runs_with_upstream()
    worsen(runs, 1.6e7, 1e6, 2, 0.08)  # the inversion sits at the largest N, T = 2
    points = select_points(runs, "synthetic")
    assert len(size_inversion_notes(points.candidates)) == 1
    averaged = points.averaged
    kept = np.flatnonzero(~((averaged["examples"] == 1e6) & (averaged["epochs"] == 2)))
    assert size_inversion_notes(points.take(kept).candidates) == []
