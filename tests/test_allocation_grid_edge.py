"""Approach 1 on a grid: P*(C) is located between the grid's sizes and matches the closed form
where fitting the frontier's runs did not; where the best size sits at the grid's edge it says
which sizes to add; E(P) is read at the largest N that enough model sizes reached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from scalelab.analysis import fit_scaling
from scalelab.analysis.chinchilla import fit_allocation
from scalelab.analysis.frontier import frontier_indices
from scalelab.analysis.synthetic import KnownLaw, synthetic_runs

LAW = KnownLaw()


def closed_form(law: KnownLaw) -> float:
    """The P*(C) exponent of E + A/P^alpha + B/N^beta at fixed T: beta / (alpha + beta)."""
    return law.beta / (law.alpha + law.beta)


def _runs(params, examples, law: KnownLaw = LAW) -> pd.DataFrame:
    return synthetic_runs(
        params=tuple(params), examples=tuple(examples), epochs=(50,), noise=0.0, law=law, target="c"
    )


def _frontier_runs_exponent(runs: pd.DataFrame) -> float:
    """What Approach 1 gave before: the least-squares slope of the frontier runs' log P."""
    c, p = runs["compute"].to_numpy(float), runs["params"].to_numpy(float)
    front = frontier_indices(c, runs["error"].to_numpy(float))
    return float(np.polyfit(np.log(c[front]), np.log(p[front]), 1)[0])


# Product grids of doubling P and N, noise-free, whose P* lies between the sizes.
DOUBLING_GRIDS = [
    (LAW, 1e5 * 2.0 ** np.arange(6), 1e5 * 2.0 ** np.arange(8)),
    (
        KnownLaw(alpha=1.0, beta=0.3, A=2e5, B=30.0),
        1e6 * 2.0 ** np.arange(7),
        1e4 * 2.0 ** np.arange(10),
    ),
]


@pytest.mark.parametrize(("law", "params", "examples"), DOUBLING_GRIDS)
def test_on_a_doubling_grid_approach_1_gives_the_closed_form(law, params, examples) -> None:
    runs = _runs(params, examples, law)
    allocation = fit_scaling(runs, "c", bootstrap=0)["allocation"]
    assert allocation["params_exponent"] == pytest.approx(closed_form(law), abs=0.01)
    assert allocation["params_exponent"] + allocation["examples_exponent"] == pytest.approx(1.0)
    assert allocation["grid_edge"] == []
    # One power law: both halves of the located range have the closed form's exponent.
    assert allocation["params_exponent_halves"] == pytest.approx([closed_form(law)] * 2, abs=0.02)
    # The frontier's runs run from the grid's cheapest corner to its costliest: their slope
    # is the grid's (0.37 and 0.36 here), well above the optimum's.
    assert _frontier_runs_exponent(runs) - closed_form(law) > 0.08


def test_a_grid_wide_enough_gives_no_warning_and_the_closed_form() -> None:
    runs = _runs(np.geomspace(1e5, 1e8, 13), np.geomspace(1e4, 1e11, 22))
    allocation = fit_scaling(runs, "c", bootstrap=0)["allocation"]
    assert allocation["grid_edge"] == []
    assert allocation["params_exponent"] == pytest.approx(closed_form(LAW), abs=0.01)


def test_where_p_star_bends_approach_1_gives_each_halfs_exponent_and_says_so() -> None:
    """A second P term, A1/P^1.5, dominates below P ≈ 3e6: P*(C) steepens from C^(0.3/1.8)
    towards C^0.5 across the grid. The reference is P*(C) of the law itself, minimised over
    continuous P at each budget."""
    law, a1 = KnownLaw(alpha=0.3, beta=0.3, A=1.0, B=2.55), 1.26e7
    runs = _runs(1e5 * 2.0 ** np.arange(11), 1e4 * 2.0 ** np.arange(17), law)
    runs["error"] += a1 * runs["params"] ** -1.5
    result = fit_scaling(runs, "c", bootstrap=0)
    allocation = result["allocation"]

    def p_star(compute: float) -> float:  # C = 3·P·N·T, T = 50
        def error(log_p: float) -> float:
            p = np.exp(log_p)
            return float(law.error(p, compute / (150 * p), 50.0) + a1 * p**-1.5)

        bounds = (np.log(1e3), np.log(1e10))
        return float(np.exp(minimize_scalar(error, bounds=bounds, method="bounded").x))

    low, high = allocation["compute_range"]
    middle = np.sqrt(low * high)
    expected = []
    for start, stop in ((low, middle), (middle, high)):
        budgets = np.geomspace(start, stop, 50)
        stars = [p_star(c) for c in budgets]
        expected.append(np.polyfit(np.log(budgets), np.log(stars), 1)[0])
    assert expected[1] - expected[0] > 0.15  # the world bends
    halves = allocation["params_exponent_halves"]
    assert halves == pytest.approx(expected, abs=0.02)
    assert (
        f"allocation: at T=50, P*(C) bends where it is located: C^{halves[0]:.2f} from "
        f"{low:.2g} to {middle:.2g} FLOP, C^{halves[1]:.2f} from there to {high:.2g}; the "
        f"exponent {allocation['params_exponent']:.2f} averages the two, and its interval does "
        "not include the bend: the power law describes this range on average only (more model "
        "sizes between the grid's locate P* more finely)"
    ) in result["notes"]


def test_a_grid_whose_p_star_outgrows_its_sizes_says_to_train_larger_models() -> None:
    law = KnownLaw(alpha=1.0, beta=0.3, A=2e5, B=30.0)
    result = fit_scaling(
        _runs(1e5 * 2.0 ** np.arange(6), 1e5 * 2.0 ** np.arange(8), law), "c", bootstrap=0
    )
    warning = (
        "allocation: at T=50, P*(C) is located at only 37 of the 132 budgets where three or "
        "more model sizes have runs; at the others P* lies beyond the grid's sizes, so the "
        "power laws describe a part of the compute range only; train larger models (the best "
        "size was the largest that reached a budget)"
    )
    assert result["allocation"]["grid_edge"] == [warning]
    assert warning in result["notes"]


def test_a_grid_whose_p_star_lies_below_its_sizes_has_no_allocation_and_says_why() -> None:
    result = fit_scaling(
        _runs(1e6 * 2.0 ** np.arange(7), 1e4 * 2.0 ** np.arange(10)), "c", bootstrap=0
    )
    assert result["allocation"] is None
    assert (
        "allocation: the allocation at T=50 needs P*(C) located over at least 0.25 decades of "
        "compute, at budgets where three or more model sizes have runs and the best has a "
        "smaller and a larger size beside it; found 12 such budgets over 0.25 decades (7 model "
        "sizes; of 146 budgets with three or more sizes, 134 had their best at the smallest "
        "size there and 0 at the largest): train smaller models (the best size was the "
        "smallest that reached a budget)"
    ) in result["notes"]


def test_two_model_sizes_give_no_allocation() -> None:
    result = fit_scaling(_runs((1e6, 1e8), np.geomspace(1e4, 1e7, 6)), "c", bootstrap=0)
    assert result["allocation"] is None
    assert (
        "allocation: the allocation at T=50 needs P*(C) located over at least 0.25 decades of "
        "compute, at budgets where three or more model sizes have runs and the best has a "
        "smaller and a larger size beside it; found 0 such budgets over 0.00 decades (2 model "
        "sizes; of 0 budgets with three or more sizes, 0 had their best at the smallest size "
        "there and 0 at the largest): train three or more model sizes at the same compute"
    ) in result["notes"]


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


def test_seed_noise_gives_approach_1_an_interval_around_the_closed_form() -> None:
    runs = synthetic_runs(
        params=tuple(np.geomspace(1e5, 1e8, 7)),
        examples=tuple(np.geomspace(1e4, 1e11, 15)),
        epochs=(50,),
        seeds=(0, 1),
        noise=0.02,
        target="c",
    )
    allocation = fit_scaling(runs, "c", bootstrap=200)["allocation"]
    low, high = allocation["params_exponent_ci"]
    assert low < allocation["params_exponent"] < high
    assert low < closed_form(LAW) < high


def test_on_chinchillas_runs_approach_1_gives_hoffmann_et_als_exponent() -> None:
    """Epoch AI's extraction of the 245 runs in Chinchilla's Fig. 4 (final losses of runs of
    142 model sizes): Hoffmann et al.'s Approach 1 gave P* ∝ C^0.50 (Table 2, 0.488-0.502)."""
    df = pd.read_csv(Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extraction.csv")
    params, compute = df["Model Size"].to_numpy(float), df["Training FLOP"].to_numpy(float)
    tokens = compute / (6 * params)
    fit = fit_allocation(1.0, compute, params, tokens, df["loss"].to_numpy(float))
    assert fit.params_exponent == pytest.approx(0.50, abs=0.015)
    assert fit.params_exponent + fit.examples_exponent == pytest.approx(1.0)
    assert fit.warnings == ()
