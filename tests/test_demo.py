"""The demo sweep end to end (minutes on a 2-core CPU): its frontier is a power law.

Runs grids/demo.toml, demo-large-n.toml and demo-wide-n.toml (one sweep) as `make demo` does
(two local workers, then `scalelab fit` per target) and checks goals 1-5 and 7 of issue 16 on
both synthetic targets: the bend b of E(C) = a(b+C)^-alpha + E_inf lies below the frontier
(or b = 0), R^2 (log) >= 0.97 over at least 2 decades of compute, alpha in [0.05, 1] with a
95% bootstrap interval narrower than 0.2 that excludes 0, and frontier points from at least 3
model sizes and 3 dataset sizes; E(P) and E(N) with intervals; P*(C) and N*(C) exponents
from Approaches 1 and 3 with intervals narrower than 0.3, each inside the other's interval;
pretrained features >= 10
points better than the best random initialisation; and no size that trained worse upstream
than a smaller one (the fit's tuning note).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_process import ROOT, run_scalelab

from scalelab import load_runs

TARGETS = ("synthetic-cifar10", "synthetic-cifar100")
DEMO_GRIDS = ("demo.toml", "demo-large-n.toml", "demo-wide-n.toml")  # as the Makefile's demo


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("demo")
    db = str(work / "runs.db")
    for grid in DEMO_GRIDS:
        run_scalelab("enqueue", str(ROOT / "grids" / grid), "--db", db, cwd=work)
    run_scalelab(
        "launch", "--executor", "local", "--workers", "2", "--until-empty", "--db", db, cwd=work
    )
    return Path(db)


@pytest.fixture(scope="module")
def demo_fits(demo_db: Path) -> dict[str, dict]:
    work, db = demo_db.parent, str(demo_db)
    fits = {}
    for target in TARGETS:
        out = work / f"fit-{target}.json"
        run_scalelab(
            "fit",
            "--target",
            target,
            "--sweep",
            "demo",
            "--bootstrap",
            "1000",
            "--db",
            db,
            "--json",
            str(out),
            cwd=work,
        )
        fits[target] = json.loads(out.read_text())
    return fits


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_demo_frontier_is_a_power_law_with_a_believable_exponent(demo_fits, target) -> None:
    fit = demo_fits[target]
    law, frontier = fit["compute_law"], fit["frontier"]
    compute = [point["compute"] for point in frontier]
    # 1. The power-law regime: no bend inside the data, a good fit over >= 2 decades.
    assert law["b"] == 0 or law["b"] < min(compute), (law["b"], min(compute))
    assert law["r2"] >= 0.97
    assert math.log10(max(compute) / min(compute)) >= 2
    # 2. A believable exponent, measured tightly.
    low, high = law["alpha_ci"]
    assert 0.05 <= law["alpha"] <= 1.0
    assert 0 < low <= law["alpha"] <= high and high - low < 0.2
    # 3. A broad frontier: several model sizes and dataset sizes take turns on it.
    assert len({point["model"] for point in frontier}) >= 3
    assert len({point["examples"] for point in frontier}) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_demo_bottleneck_laws_have_intervals(demo_fits, target) -> None:
    # 4. E(P) and E(N): two seeds per point, so every resample keeps every size.
    for law in ("params_law", "examples_law"):
        low, high = demo_fits[target][law]["alpha_ci"]
        assert 0 < low < high, (law, low, high)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_demo_allocation_approaches_agree_within_their_intervals(demo_fits, target) -> None:
    # 5. Approach 1 (P* located between the sizes) and Approach 3 (E(P, N)) at T = 1.
    one, three = demo_fits[target]["allocation"], demo_fits[target]["parametric"]
    for exponent in ("params_exponent", "examples_exponent"):
        (low1, high1), (low3, high3) = one[f"{exponent}_ci"], three[f"{exponent}_ci"]
        assert high1 - low1 < 0.3 and high3 - low3 < 0.3, (exponent, one, three)
        assert low3 <= one[exponent] <= high3, (exponent, one[exponent], three[f"{exponent}_ci"])
        assert low1 <= three[exponent] <= high1, (exponent, three[exponent], one[f"{exponent}_ci"])


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_demo_pretrained_features_beat_random_initialisation(demo_db, target) -> None:
    # 7. The best pretrained point probes >= 10 points better than the best T = 0 baseline
    # (the same models at random initialisation), both as seed means.
    runs = load_runs(str(demo_db), sweeps=["demo"])
    runs = runs[runs["target"] == target]
    means = runs.groupby(["model", "examples", "epochs"])["error"].mean().reset_index()
    pretrained = means.loc[means["epochs"] > 0, "error"].min()
    random_init = means.loc[means["epochs"] == 0, "error"].min()
    assert random_init - pretrained >= 0.10, (random_init, pretrained)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_demo_recipe_trains_every_size_well(demo_fits, target) -> None:
    # With one learning rate for every size, B-1/Wi-128 trained worse than B-1/Wi-64 at the
    # same N and T; the demo sweeps two rates, and the fit's tuning check finds no inversion.
    notes = demo_fits[target]["notes"]
    assert not [note for note in notes if note.startswith("tuning:")], notes
