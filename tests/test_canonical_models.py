"""Model names are canonical (issue 13, item 7): one network is one job however it is spelled,
and the canonical name is the one stored and shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from recorded import grid_file
from test_worker import jobs
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.cli import app
from scalelab.errors import GridError, ModelNameError
from scalelab.grid import parse_grid
from scalelab.models.names import parse_model_name

runner = CliRunner()


def test_spellings_of_one_network_are_one_job(db_url: str, tmp_path: Path) -> None:
    plain = parse_grid(grid_file(tmp_path, "a", models='["B-1/Wi-16"]', examples="[1000]"))
    padded = parse_grid(grid_file(tmp_path, "b", models='["B-01/Wi-016/E-4"]', examples="[1000]"))
    assert [j.model for j in padded.jobs] == ["B-1/Wi-16"]
    assert [j.config_hash for j in padded.jobs] == [j.config_hash for j in plain.jobs]
    assert padded.jobs[0].config["model"] == "B-1/Wi-16"
    for name in ("a", "b"):
        result = runner.invoke(app, ["enqueue", str(tmp_path / f"{name}.toml"), "--db", db_url])
        assert result.exit_code == 0, result.output
    assert "sweep b: added 0 jobs, 1 already present" in result.output
    assert [(j.model, j.config["model"]) for j in jobs(db_url)] == [("B-1/Wi-16", "B-1/Wi-16")]


def test_a_grid_naming_one_network_twice_is_refused(tmp_path: Path) -> None:
    path = grid_file(tmp_path, models='["B-1/Wi-16", "B-01/Wi-16/E-4"]')
    with pytest.raises(GridError) as info:
        parse_grid(path)
    assert str(info.value) == (
        f"{path}:6: 'models' lists B-1/Wi-16 twice (as 'B-1/Wi-16' and 'B-01/Wi-16/E-4'); "
        "remove one: they are the same network"
    )


def test_imported_names_are_stored_canonical(db_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text(
        "model,params,examples,epochs,target,error\n"
        "B-02/Wi-0128/E-4,1000,100,1,t,0.5\nB-2/Wi-128,1000,100,2,t,0.4\nmy-vit,9,100,1,t,0.6\n"
    )
    assert runner.invoke(app, ["import", str(csv), "--db", db_url]).exit_code == 0
    runs = load_runs(db_url)
    assert sorted(set(runs["model"])) == ["B-2/Wi-128", "my-vit"]
    assert runs.loc[runs["model"] == "B-2/Wi-128", "job_id"].nunique() == 1  # one run


def test_the_authors_spelling_suggests_the_canonical_name() -> None:
    with pytest.raises(ModelNameError) as info:
        parse_model_name("B_12-Wi_1024-E_4")
    assert (
        str(info.value)
        == "model name 'B_12-Wi_1024-E_4' does not parse; did you mean 'B-12/Wi-1024'?"
    )
