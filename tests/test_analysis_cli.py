"""`scalelab fit` and `scalelab plan` on a real SQLite file: imported CSV -> fit, no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scalelab.analysis.synthetic import synthetic_runs
from scalelab.cli import app
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.schema import Fit

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A database holding imported results only."""
    runs = synthetic_runs(seeds=(0, 1), target="cifar10")
    csv = tmp_path / "results.csv"
    runs[["model", "params", "flops", "examples", "epochs", "seed", "target", "error"]].to_csv(
        csv, index=False
    )
    path = str(tmp_path / "runs.db")
    result = runner.invoke(app, ["import", str(csv), "--db", path])
    assert result.exit_code == 0, result.output
    return path


def stored_fits(db: str) -> list[Fit]:
    with session_scope(open_engine(db), write=False) as session:
        return list(session.query(Fit).all())


def test_fit_prints_stores_and_writes_json(db: str, tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    result = runner.invoke(
        app, ["fit", "--target", "cifar10", "--bootstrap", "50", "--json", str(out), "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert "E(C) = a(b+C)^-α + E∞" in result.output
    assert "stored as fit 1" in result.output
    written = json.loads(out.read_text())
    assert written["fit_id"] == 1
    assert written["n_points"] == 6 * 6 * 3  # seed means: 2 seeds per point
    assert written["seeds_per_point"] == {"2": 6 * 6 * 3}
    assert written["sweeps"] == ["results"]
    assert written["examples_law"]["alpha"] == pytest.approx(0.35, abs=0.03)
    (fit,) = stored_fits(db)
    assert fit.target == "cifar10"
    assert sorted(fit.checkpoint_ids) == sorted(written["checkpoint_ids"])
    assert fit.result["compute_law"] == written["compute_law"]


def test_plan_uses_the_stored_fit(db: str) -> None:
    fitted = runner.invoke(app, ["fit", "--target", "cifar10", "--bootstrap", "50", "--db", db])
    assert fitted.exit_code == 0
    result = runner.invoke(
        app, ["plan", "--target", "cifar10", "--budget", "1e17", "--classes", "100", "--json",
              "--db", db],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["budget"] == 1e17 and plan["predicted_error"] > 0
    assert plan["predicted_error_ci"] is not None
    assert 3 * plan["config"]["flops"] * plan["config"]["examples"] * plan["config"][
        "epochs"
    ] == pytest.approx(1e17)
    assert len(stored_fits(db)) == 1  # no new fit


def test_plan_without_a_stored_fit_fits_and_stores_one(db: str) -> None:
    result = runner.invoke(
        app,
        ["plan", "--target", "cifar10", "--budget", "1e16", "--classes", "100", "--bootstrap",
         "50", "--db", db],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "note: no stored fit for 'cifar10': fitted it now (fit id 1)" in result.output
    assert "best error E(C)" in result.output
    assert len(stored_fits(db)) == 1


def test_bad_input_is_one_line_exit_2_and_stores_nothing(db: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["fit", "--target", "cifar100", "--db", db])
    assert result.exit_code == 2
    assert result.output == "error: no points for target 'cifar100'; targets with points: cifar10\n"
    result = runner.invoke(
        app, ["fit", "--target", "cifar10", "--json", str(tmp_path / "no" / "fit.json"), "--db", db]
    )
    assert result.exit_code == 2
    assert result.output == (
        f"error: cannot write {tmp_path / 'no' / 'fit.json'}: there is no directory "
        f"{tmp_path / 'no'}; create it or give another --json path\n"
    )
    result = runner.invoke(app, ["plan", "--target", "cifar10", "--budget", "-5", "--db", db])
    assert result.exit_code == 2
    assert result.output == (
        "error: the budget must be a positive number of FLOP, like 1e18; got -5.0\n"
    )
    assert stored_fits(db) == []


def test_too_few_points_error_through_the_cli(tmp_path: Path) -> None:
    runs = synthetic_runs(params=(1e6,), examples=(1e4, 1e5), epochs=(50,))
    csv = tmp_path / "few.csv"
    runs[["model", "params", "examples", "epochs", "target", "error"]].to_csv(csv, index=False)
    db = str(tmp_path / "few.db")
    assert runner.invoke(app, ["import", str(csv), "--db", db]).exit_code == 0
    result = runner.invoke(app, ["fit", "--target", "synthetic", "--db", db])
    assert result.exit_code == 2
    assert result.output.startswith("error: too few frontier points for the 4-parameter")
    assert result.output.count("\n") == 1
    assert stored_fits(db) == []


@pytest.mark.parametrize("command", ["fit", "plan"])
def test_commands_are_documented_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"Example: scalelab {command} --target" in " ".join(result.output.split())


def test_upstream_error_is_a_target_like_any_other(tmp_path: Path) -> None:
    runs = synthetic_runs(target="upstream")
    csv = tmp_path / "up.csv"
    runs[["model", "params", "examples", "epochs", "target", "error"]].to_csv(csv, index=False)
    db = str(tmp_path / "up.db")
    assert runner.invoke(app, ["import", str(csv), "--db", db]).exit_code == 0
    result = runner.invoke(app, ["fit", "--target", "upstream", "--bootstrap", "0", "--db", db])
    assert result.exit_code == 0, result.output
    assert np.isfinite(stored_fits(db)[0].result["compute_law"]["alpha"])


def test_an_unchanged_fit_is_reused_and_new_results_refit(db: str, tmp_path: Path) -> None:
    args = ["fit", "--target", "cifar10", "--bootstrap", "50", "--db", db]
    first = runner.invoke(app, args)
    again = runner.invoke(app, args)
    assert "stored as fit 1" in first.output
    assert "inputs unchanged since fit 1, reused" in again.output
    assert len(stored_fits(db)) == 1
    other_seed = runner.invoke(app, [*args, "--seed", "1"])
    assert "stored as fit 2" in other_seed.output  # other options: a new fit
    extra = tmp_path / "more.csv"
    extra.write_text("model,params,examples,epochs,target,error\nx,1e9,1e9,1,cifar10,0.9\n")
    added = runner.invoke(app, ["import", str(extra), "--sweep", "results", "--db", db])
    assert added.exit_code == 0, added.output
    refit = runner.invoke(app, args)
    assert "stored as fit 3" in refit.output  # new points: fitted again
