"""plan_budget: the forecast of `scalelab plan` from a fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.analysis import fit_scaling, plan_budget, render_plan
from scalelab.analysis.synthetic import synthetic_runs
from scalelab.errors import FitError
from scalelab.flops import model_cost

ZOO = ["B-6/Wi-256", "B-6/Wi-512", "B-12/Wi-1024"]


@pytest.fixture(scope="module")
def fit() -> dict:
    return fit_scaling(synthetic_runs(seeds=(0, 1)), "synthetic", bootstrap=100)


def test_prediction_allocation_and_configuration(fit: dict) -> None:
    budget = 1e17
    plan = plan_budget(fit, budget, ZOO, num_classes=100, resolution=32)
    law = fit["compute_law"]
    assert plan["predicted_error"] == pytest.approx(
        law["a"] * (law["b"] + budget) ** -law["alpha"] + law["e_inf"]
    )
    lo, hi = plan["predicted_error_ci"]
    assert lo <= plan["predicted_error"] <= hi
    alloc = fit["allocation"]
    p_star = alloc["params_coefficient"] * budget ** alloc["params_exponent"]
    assert plan["params"] == pytest.approx(p_star)
    assert plan["params_ci"][0] <= plan["params"] <= plan["params_ci"][1]
    assert plan["examples_ci"][0] <= plan["examples"] <= plan["examples_ci"][1]
    assert plan["allocation_epochs"] == alloc["epochs"]
    config = plan["config"]
    costs = {m: model_cost(m, 100, 32) for m in ZOO}
    nearest = min(ZOO, key=lambda m: abs(math.log(costs[m].params / plan["params"])))
    assert config["model"] == nearest
    assert (config["params"], config["flops"]) == (costs[nearest].params, costs[nearest].flops)
    # Trained for the T the allocation was fitted at, on the N that spends the budget.
    assert config["epochs"] == alloc["epochs"]
    assert config["examples"] == round(budget / (3 * config["flops"] * alloc["epochs"]))
    assert 3 * config["flops"] * config["examples"] * config["epochs"] == pytest.approx(budget)
    assert "budget C = 1e+17 FLOP" in render_plan(plan)


def test_more_compute_buys_lower_error_and_bigger_models(fit: dict) -> None:
    plans = [plan_budget(fit, c, ZOO, num_classes=100, resolution=32) for c in (1e15, 1e16, 1e17)]
    errors = [p["predicted_error"] for p in plans]
    assert errors == sorted(errors, reverse=True)
    assert [p["params"] for p in plans] == sorted(p["params"] for p in plans)


def test_extrapolation_and_far_from_the_zoo_are_noted(fit: dict) -> None:
    top = fit["frontier"][-1]["compute"]
    plan = plan_budget(fit, 1e4 * top, ["B-6/Wi-256"], num_classes=100, resolution=32)
    assert any("above the largest compute on the frontier" in n for n in plan["notes"])
    assert any(n.startswith("the nearest model of the zoo, B-6/Wi-256") for n in plan["notes"])


def test_no_allocation_gives_a_forecast_without_a_configuration() -> None:
    one_model = synthetic_runs(params=(3e7,), examples=tuple(np.geomspace(1e4, 1e7, 8)))
    fit = fit_scaling(one_model, "synthetic", bootstrap=0)
    plan = plan_budget(fit, 1e16, ZOO, num_classes=100, resolution=32)
    assert plan["predicted_error"] > 0
    assert plan["predicted_error_ci"] is None  # no resamples, no interval
    assert plan["config"] is None and plan["params"] is None
    assert "no allocation in this fit (see its notes), so no P*(C), N*(C) or model" in plan["notes"]


@pytest.mark.parametrize("budget", [0.0, -1e18, float("nan"), float("inf")])
def test_a_budget_must_be_a_positive_number_of_flop(fit: dict, budget: float) -> None:
    with pytest.raises(FitError) as info:
        plan_budget(fit, budget, ZOO, num_classes=100, resolution=32)
    assert str(info.value) == (
        f"the budget must be a positive number of FLOP, like 1e18; got {budget}"
    )


def test_the_paper_zoo_is_the_default(fit: dict) -> None:
    plan = plan_budget(fit, 1e17, num_classes=11230, resolution=64)
    from scalelab.models import PAPER_ZOO

    assert plan["config"]["model"] in PAPER_ZOO
