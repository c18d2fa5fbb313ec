"""`scalelab plan` checks that its stored fit still describes the runs, and plans at the T
the allocation was fitted at (issue 13, item 5). SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from recorded import grid_file, record_grid
from sqlalchemy import func, select
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.flops import model_cost
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.schema import Fit

runner = CliRunner()
TARGET = ["--target", "synthetic-cifar10"]
PLAN = ["plan", *TARGET, "--budget", "1e13", "--classes", "10", "--resolution", "16"]


def _fits(db: str) -> int:
    with session_scope(open_engine(db), write=False) as session:
        return session.scalar(select(func.count()).select_from(Fit))


def _plan(db: str, *args: str) -> dict:
    result = runner.invoke(app, [*PLAN, "--bootstrap", "0", "--json", "--db", db, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_refits_or_refuses_when_the_runs_changed(db_url: str, tmp_path: Path) -> None:
    record_grid(db_url, grid_file(tmp_path, "main"))
    fitted = runner.invoke(app, ["fit", *TARGET, "--bootstrap", "0", "--db", db_url])
    assert fitted.exit_code == 0, fitted.output
    current = _plan(db_url)
    assert _fits(db_url) == 1
    assert not any("refitted" in n or "no stored fit" in n for n in current["notes"])

    record_grid(db_url, grid_file(tmp_path, "more", models='["B-3/Wi-256"]'))  # same recipe
    refused = runner.invoke(app, [*PLAN, "--no-refit", "--db", db_url])
    assert refused.exit_code == 2
    assert refused.output == (
        "error: the stored fit 1 of 'synthetic-cifar10' no longer matches the runs (they "
        "changed, or other sweeps are selected); run `scalelab fit --target synthetic-cifar10` "
        "first, or drop --no-refit\n"
    )
    assert _fits(db_url) == 1
    refitted = _plan(db_url)
    assert (
        refitted["notes"][0]
        == "the stored fit 1 no longer matched the runs: refitted it (fit id 2)"
    )
    assert _fits(db_url) == 2
    again = _plan(db_url)  # now current: used as stored
    assert not any("refitted" in n or "no stored fit" in n for n in again["notes"])
    assert _fits(db_url) == 2


def law_with_p_star_inside(config: dict, epochs: float) -> tuple[float, float]:
    """recorded.law with a P term 20x larger: on the grid below, P* lies between the sizes
    (with recorded.law it lies below the smallest, and Approach 1 has no minimum to read)."""
    params = model_cost(config["model"], 10, 16).params
    error = 0.1 + 100.0 * params**-0.5 + 3.0 * (config["examples"] * epochs**0.5) ** -0.3
    return error, error


def test_the_planned_t_is_the_allocations_unless_asked(db_url: str, tmp_path: Path) -> None:
    grid = grid_file(tmp_path, "main", examples="[1000, 4000, 16000, 64000]")
    record_grid(db_url, grid, error=law_with_p_star_inside)
    plan = _plan(db_url)
    assert plan["allocation_epochs"] == 1.0  # the smallest T of the grid
    config = plan["config"]
    assert config["epochs"] == 1.0
    assert config["examples"] == round(1e13 / (3 * config["flops"] * 1.0))
    asked = _plan(db_url, "--epochs", "4")
    assert asked["config"]["epochs"] == 4.0
    assert (
        "P*(C) and N*(C) were fitted at T=1; this configuration trains for T=4 as asked"
        in (asked["notes"])
    )
