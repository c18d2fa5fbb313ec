"""The fit card: every stored fit records how it was made; `scalelab fit --card` prints it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from scalelab.analysis.card import render_card
from scalelab.analysis.points import SELECTION_RULE
from scalelab.cli import app
from scalelab.store.engine import open_engine
from scalelab.store.results import latest_fit

runner = CliRunner()


def write_runs(path: Path, *, flops: bool) -> Path:
    """A smooth error surface over 4 P × 4 N × T ∈ {0, 1, 2, 4}; T = 0 rows are baselines."""
    rows = []
    for p in (1e6, 3e6, 1e7, 3e7):
        for n in (1e5, 3e5, 1e6, 3e6):
            for t in (0, 1, 2, 4):
                error = 0.9 if t == 0 else 0.05 + 30 * p**-0.3 + 40 * (n * t) ** -0.3
                rows.append({"model": f"P{p:g}", "params": int(p), "examples": int(n)})
                rows[-1].update(epochs=t, target="t", error=error)
                if flops:
                    rows[-1]["flops"] = int(p)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def fit_card_output(db: str, csv: Path) -> str:
    assert runner.invoke(app, ["import", str(csv), "--db", db]).exit_code == 0
    result = runner.invoke(
        app, ["fit", "--target", "t", "--bootstrap", "20", "--card", "--db", db], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_stored_fit_records_its_card(db_url: str, tmp_path: Path) -> None:
    out = fit_card_output(db_url, write_runs(tmp_path / "runs.csv", flops=True))
    stored = latest_fit(open_engine(db_url, create=False), "t")
    assert stored["card"]["flop_convention"] == ["mac"]
    assert out.splitlines() == [
        f"**Fit card: t** (import, 48 points from 16 runs, fit {stored['fit_id']})",
        "",
        "- FLOP convention: 1 multiply-accumulate = 1 FLOP (fvcore, the paper's); "
        "C = FLOP(f)·3·N·T",
        "- Loss:",
        "  - compute law: least squares on log E",
        "  - bottleneck laws: least squares on log E",
        "  - parametric: Huber on log E, δ = 0.001, summed over points",
        "  - approach2: least squares on E per IsoFLOP profile (parabola in ln P), on log P*",
        "- Optimiser and starts:",
        "  - compute law: Levenberg-Marquardt (scipy curve_fit), 18 starts",
        "  - bottleneck laws: Levenberg-Marquardt (scipy curve_fit), 9 starts",
        # Besiroglu et al.'s grid: 6 values of a and b, 5 of e, alpha and beta.
        "  - parametric: L-BFGS-B from the best 24 of 4500 grid starts (Besiroglu et al. 2024)",
        "  - allocation: least squares on log P*, log N* against log C (closed form), P* located "
        "per budget by a parabola in ln P through the best size and its neighbours",
        "- Points dropped:",
        "  - 16 points: C = 0 random-init baselines",
        f"- Selection rule: {SELECTION_RULE}",
        "- Seeds averaged per point: 48 points of 1 seed",
        "- Bootstrap: 20 resamples of runs, seed 0",
    ]
    assert stored["approach2"] is None  # no IsoFLOP profiles in a P × N × T grid


def test_imported_results_without_flops_say_flop_f_was_taken_as_p(tmp_path: Path) -> None:
    out = fit_card_output(str(tmp_path / "runs.db"), write_runs(tmp_path / "r.csv", flops=False))
    assert (
        "- FLOP convention: FLOP(f) taken as P (imported without a flops column); "
        "C = 3·P·N·T or as given"
    ) in out.splitlines()


def test_the_card_prints_what_other_fit_options_store() -> None:
    """Selection (`fit --sweep` and hyper-parameter choice), seed averaging and `fit --loss`
    are stored by their own options; the card prints them when a fit has them."""
    result = {
        "target": "cifar10",
        "method": "ridge",
        "n_points": 12,
        "n_runs": 4,
        "excluded": {"diverged": 2, "baseline": 0},
        "approach2": None,
        "loss": "linear",
        "selection": {
            "rule": "lowest validation error per (model, N, T)",
            "dropped": 6,
            "dropped_runs": 2,
        },
        "seeds_per_point": {"2": 10, "3": 2},
        "bootstrap": {"resamples": 100, "seed": 1, "unit": "run"},
        "card": {"flop_convention": ["mac"], "loss": {"parametric": "Huber"}},
    }
    lines = render_card(result).splitlines()
    assert "  - compute law: linear (as stored with the fit)" in lines
    assert "  - parametric: Huber" in lines
    assert "  - 2 points: diverged runs" in lines
    assert "  - selection: 6 evaluations (2 runs) of hyper-parameter settings not chosen" in lines
    assert "- Selection rule: lowest validation error per (model, N, T)" in lines
    assert "- Seeds averaged per point: 10 points of 2 seeds, 2 points of 3 seeds" in lines
    assert "- Optimiser and starts: not recorded" in lines
    assert lines[-1] == "- Bootstrap: 100 resamples of runs, seed 1"
    assert "- FLOP convention: 1 multiply-accumulate = 1 FLOP" in lines[2]


def test_a_fit_stored_without_a_card_says_not_recorded() -> None:
    result = {"target": "t", "method": None, "n_points": 6, "n_runs": 6, "fit_id": 3}
    lines = render_card(result).splitlines()
    assert lines[0] == "**Fit card: t** (no method, 6 points from 6 runs, fit 3)"
    assert lines[2:4] == ["- FLOP convention: not recorded", "- Loss: not recorded"]
    assert lines[-1] == "- Bootstrap: not recorded"


def test_a_fit_stored_before_the_card_is_made_again_not_reused(tmp_path: Path) -> None:
    """A stored fit from before Approach 2 and the card has the fingerprint of the old options
    (no result version); `fit` must not hand it back without them."""
    from scalelab import load_runs
    from scalelab.analysis.commands import fit_and_store, inputs_fingerprint
    from scalelab.store.results import save_fit

    db = str(tmp_path / "runs.db")
    assert (
        runner.invoke(
            app, ["import", str(write_runs(tmp_path / "r.csv", flops=True)), "--db", db]
        ).exit_code
        == 0
    )
    options = {"epochs": None, "bootstrap": 0, "seed": 0, "method": None}
    old = {"target": "t", "fingerprint": inputs_fingerprint(load_runs(db), "t", **options)}
    save_fit(open_engine(db), "t", old, [])
    result = fit_and_store(db, "t", bootstrap=0)
    assert result["reused"] is False
    assert result["card"]["flop_convention"] == ["mac"]
    assert fit_and_store(db, "t", bootstrap=0)["reused"] is True
