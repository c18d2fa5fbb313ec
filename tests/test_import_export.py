"""`scalelab import` and `export`: results from elsewhere, round trips, and bad files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.cli import app

runner = CliRunner()
CSV = """model,params,examples,epochs,target,error,seed
B-6/Wi-256,9000000,100000,50,cifar100,0.61,0
B-6/Wi-256,9000000,100000,100,cifar100,0.57,0
B-6/Wi-256,9000000,100000,100,cifar10,0.31,0
B-12/Wi-1024,124840000,1000000,50,cifar100,0.42,1
"""


def _write(tmp_path: Path, text: str, name: str = "results.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_makes_runs_that_load_runs_returns(db_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path, CSV)
    result = runner.invoke(app, ["import", str(path), "--db", db_url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "imported 4 rows: 2 new runs, 3 new checkpoints"
    runs = load_runs(db_url).sort_values(["params", "epochs", "target"]).reset_index(drop=True)
    assert len(runs) == 4
    assert set(runs["source"]) == {"import"} and set(runs["status"]) == {"done"}
    first = runs.iloc[0]
    # No flops column: FLOP(f) is taken as P (≈ P for an MLP), recorded as such.
    assert first["flop_convention"] == "params"
    assert first["compute"] == pytest.approx(9e6 * 3 * 1e5 * 50)
    assert runs["error"].tolist() == [0.61, 0.31, 0.57, 0.42]
    # Importing the same file again changes nothing.
    again = runner.invoke(app, ["import", str(path), "--db", db_url])
    assert again.output.strip() == "imported 4 rows: 0 new runs, 0 new checkpoints"
    assert len(load_runs(db_url)) == 4


def test_flops_and_compute_columns_are_used(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    path = _write(
        tmp_path,
        "model,params,examples,epochs,target,error,flops,compute\n"
        "a,10,100,2,loss,3.5,20,\n"
        "b,10,100,2,loss,3.0,20,1e9\n",
    )
    assert runner.invoke(app, ["import", str(path), "--db", db]).exit_code == 0
    runs = load_runs(db).sort_values("model")
    assert runs["compute"].tolist() == [20 * 3 * 100 * 2, 1e9]
    assert set(runs["flop_convention"]) == {"mac"}


def test_export_round_trips_through_import(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    runner.invoke(app, ["import", str(_write(tmp_path, CSV)), "--db", db])
    out = tmp_path / "export.csv"
    result = runner.invoke(app, ["export", "--out", str(out), "--db", db])
    assert result.output.strip() == f"wrote 4 rows to {out}"
    exported = pd.read_csv(out)
    assert {"model", "params", "compute", "target", "error", "flops"} <= set(exported.columns)
    db2 = str(tmp_path / "b.db")
    assert runner.invoke(app, ["import", str(out), "--db", db2]).exit_code == 0
    cols = ["model", "params", "examples", "epochs", "target", "error", "compute"]
    a = load_runs(db)[cols].sort_values(cols).reset_index(drop=True)
    b = load_runs(db2)[cols].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    parquet = tmp_path / "export.parquet"
    assert runner.invoke(app, ["export", "--out", str(parquet), "--db", db]).exit_code == 0
    assert len(pd.read_parquet(parquet)) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model,params,examples,epochs,error\na,1,1,1,0.5\n",
            "missing column(s) target; expected model, params, examples, epochs, target, error "
            "(optional: flops, compute, seed)",
        ),
        (
            "model,params,examples,epochs,target,error\na,1,1,1,t,abc\n",
            "line 2: error = 'abc' is not a finite number; fix or drop that row",
        ),
        (
            "model,params,examples,epochs,target,error\na,1,1,1,t,0.5\na,0,1,1,t,0.5\n",
            "line 3: params must be > 0, got 0",
        ),
        (
            "model,params,examples,epochs,target,error\na,1,1,1,t,-0.5\n",
            "line 2: error must be > 0 (an error rate or a loss), got -0.5",
        ),
        (
            "model,params,examples,epochs,target,error\na,1,1,-1,t,0.5\n",
            "line 2: epochs must be ≥ 0",
        ),
        ("model,params,examples,epochs,target,error\n", "no rows to import"),
    ],
)
def test_bad_files_are_one_line_errors_and_write_nothing(
    tmp_path: Path, text: str, message: str
) -> None:
    db = str(tmp_path / "runs.db")
    path = _write(tmp_path, text)
    result = runner.invoke(app, ["import", str(path), "--db", db])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no database, no lock


def test_export_unknown_format(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    runner.invoke(app, ["import", str(_write(tmp_path, CSV)), "--db", db])
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "x.xlsx"), "--db", db])
    assert result.exit_code == 2
    assert "unknown format '.xlsx'; use a .csv or .parquet file" in result.output
