"""Grid files: validation with one-line errors, expansion into jobs, idempotent enqueue."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import GridError
from scalelab.grid import TRAIN_DEFAULTS, parse_grid
from scalelab.probe.ridge import DEFAULT_PENALTIES
from scalelab.store.engine import open_engine
from scalelab.store.status import queue_status

runner = CliRunner()

BASE = """name = "g"
dataset = "synthetic"
resolution = 16
models = ["B-1/Wi-16", "B-2/Wi-32"]
examples = [100, 200]
epochs = [1, 2]
seeds = [0]

[train]
batch_size = 32

[probe]
targets = ["synthetic-cifar10"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def enqueue(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["enqueue", *args])
    return result.exit_code, result.output


def test_constant_schedule_makes_one_job_per_model_n_seed(tmp_path: Path) -> None:
    grid = parse_grid(write(tmp_path, BASE))
    assert len(grid.jobs) == 4
    assert all(job.epochs == [1, 2] for job in grid.jobs)
    assert len({job.config_hash for job in grid.jobs}) == 4


def test_schedule_over_t_makes_one_job_per_t(tmp_path: Path) -> None:
    grid = parse_grid(write(tmp_path, BASE.replace("batch_size = 32", 'schedule = "cosine"')))
    assert len(grid.jobs) == 8
    assert sorted(job.epochs for job in grid.jobs)[:2] == [[1], [1]]


def test_a_train_list_sweeps(tmp_path: Path) -> None:
    text = BASE.replace("batch_size = 32", "batch_size = [32, 64]\nlr = [1e-4, 3e-4, 1e-3]")
    grid = parse_grid(write(tmp_path, text))
    assert len(grid.jobs) == 4 * 2 * 3
    assert {job.config["train"]["batch_size"] for job in grid.jobs} == {32, 64}
    assert grid.jobs[0].config["train"]["label_smoothing"] == 0.3  # the paper's default


@settings(max_examples=25, deadline=None)
@given(
    examples=st.lists(st.integers(1, 10**6), min_size=1, max_size=4, unique=True),
    epochs=st.lists(st.integers(1, 800), min_size=1, max_size=4, unique=True),
    seeds=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
    lrs=st.lists(st.sampled_from([1e-5, 1e-4, 1e-3]), min_size=1, max_size=3, unique=True),
)
def test_expansion_is_the_product_and_order_free(
    tmp_path_factory: pytest.TempPathFactory,
    examples: list[int],
    epochs: list[int],
    seeds: list[int],
    lrs: list[float],
) -> None:
    def grid_text(ex: list[int], ep: list[int]) -> str:
        return (
            f'name = "h"\nclasses = 1000\nresolution = 16\nmodels = ["B-1/Wi-16"]\n'
            f"examples = {ex}\nepochs = {ep}\nseeds = {seeds}\n[train]\nlr = {lrs}\n"
        )

    tmp = tmp_path_factory.mktemp("g")
    grid = parse_grid(write(tmp, grid_text(examples, epochs)))
    assert len(grid.jobs) == len(examples) * len(seeds) * len(lrs)
    assert len({j.config_hash for j in grid.jobs}) == len(grid.jobs)
    assert all(j.epochs == sorted(epochs) for j in grid.jobs)
    shuffled = parse_grid(write(tmp, grid_text(examples[::-1], epochs[::-1])))
    assert {j.config_hash for j in shuffled.jobs} == {j.config_hash for j in grid.jobs}


def test_enqueue_is_idempotent_and_adds_only_new_jobs(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    grid = write(tmp_path, BASE)
    code, out = enqueue(str(grid), "--db", db)
    assert code == 0, out
    assert "sweep g: added 4 jobs, 0 already present (0 extended with new epochs)" in out
    assert "total" in out and "PFLOPs" in out
    code, out = enqueue(str(grid), "--db", db)
    assert "added 0 jobs, 4 already present (0 extended" in out
    write(tmp_path, BASE.replace("examples = [100, 200]", "examples = [100, 200, 400]"))
    code, out = enqueue(str(grid), "--db", db)
    assert "added 2 jobs, 4 already present" in out
    # A new T extends the existing jobs instead of duplicating them.
    write(tmp_path, BASE.replace("epochs = [1, 2]", "epochs = [1, 2, 4]"))
    code, out = enqueue(str(grid), "--db", db)
    assert "added 0 jobs, 4 already present (4 extended with new epochs)" in out
    assert queue_status(open_engine(db)).counts["queued"] == 6


def test_dry_run_writes_nothing_and_reports_compute_as_json(tmp_path: Path) -> None:
    import json

    db = str(tmp_path / "runs.db")
    code, out = enqueue(str(write(tmp_path, BASE)), "--db", db, "--dry-run", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["added"] == 4 and report["dry_run"] is True
    from scalelab.flops import model_cost

    flops = model_cost("B-2/Wi-32", 1000, 16).flops
    b2 = next(m for m in report["models"] if m["model"] == "B-2/Wi-32")
    assert b2["pflops"] == pytest.approx(flops * 3 * (100 + 200) * 2 / 1e15)
    assert sum(queue_status(open_engine(db)).counts.values()) == 0


BAD = [
    (
        'name = "g"\nmodels = ["B-1/Wi-16",, ]\n',
        "grid.toml:2:23: invalid TOML: Invalid value; fix the syntax",
    ),
    (
        BASE.replace("epochs =", "epoch ="),
        "grid.toml:6: unknown key 'epoch' in the grid; did you mean 'epochs'?",
    ),
    (
        BASE.replace("batch_size = 32", "batchsize = 32"),
        "grid.toml:10: unknown key 'batchsize' in [train]; did you mean 'batch_size'?",
    ),
    (
        BASE.replace("examples = [100, 200]", "examples = 100"),
        "grid.toml:5: 'examples' must be a list, got 100",
    ),
    (
        BASE.replace("examples = [100, 200]", 'examples = [100, "lots"]'),
        "grid.toml:5: 'examples' must hold integers, got 'lots'",
    ),
    (
        BASE.replace("examples = [100, 200]", "examples = []"),
        "grid.toml:5: 'examples' is an empty list; give at least one value",
    ),
    (
        BASE.replace("examples = [100, 200]", "examples = [0, 200]"),
        "grid.toml:5: 'examples' must be > 0, got 0",
    ),
    (BASE.replace("epochs = [1, 2]", "epochs = [-1]"), "grid.toml:6: 'epochs' must be > 0, got -1"),
    (
        BASE.replace("batch_size = 32", 'batch_size = "big"'),
        "grid.toml:10: [train] batch_size = 'big' has the wrong type; expected like 16384",
    ),
    (BASE.replace('"B-2/Wi-32"', '"B-2/Wi-"'), "grid.toml:4: "),
    (
        BASE.replace('"synthetic-cifar10"', '"cifar1000"'),
        "grid.toml:13: [probe] unknown target 'cifar1000'; did you mean 'cifar100'?",
    ),
    (
        BASE.replace("examples = [100, 200]", "examples = [100, 2000000]"),
        "grid.toml:5: N = 2000000 is larger than the dataset (1200000 examples); lower 'examples'",
    ),
    (
        BASE.replace('name = "g"\n', ""),
        "grid.toml: missing required key 'name'; see grids/demo.toml",
    ),
    (
        BASE + "settings = { lambdas = [1.0] }\n",
        "grid.toml:14: [probe] unknown setting 'lambdas' for probe method 'ridge'; settings: "
        "holdout, penalties",
    ),
    (
        BASE + "settings = { train_examples = 0 }\n",
        "grid.toml:14: [probe] settings.train_examples must be an integer > 0",
    ),
    (
        BASE.replace("batch_size = 32", 'precision = "fp16"'),
        "grid.toml:10: [train] precision 'fp16' is unknown; use one of ('tf32', 'bf16')",
    ),
    (
        BASE.replace("batch_size = 32", "crop_ratio = [1.5, 0.5]"),
        "grid.toml:10: [train] crop_ratio = [1.5, 0.5] has the wrong type; expected like "
        "[0.75, 1.3333333333333333]",
    ),
    (
        BASE.replace('dataset = "synthetic"', 'dataset = "synthetic:pose_zipf=0"'),
        "grid.toml:2: dataset 'synthetic:pose_zipf=0': pose_zipf must be a number > 0; write "
        "'synthetic' or 'synthetic:pose_zipf=X' with X > 0 (default 1.5)",
    ),
    (
        BASE.replace('dataset = "synthetic"', 'dataset = "synthetic:zipf=2"\nclasses = 5'),
        "grid.toml:2: dataset 'synthetic:zipf=2': unknown option 'zipf'; write 'synthetic' or "
        "'synthetic:pose_zipf=X' with X > 0 (default 1.5)",
    ),
    (
        BASE + 'method = "lion"\nsettings = { clip = -1.0 }\n',
        "grid.toml:15: [probe] probe setting clip=-1.0 for method 'lion' must be a number >= 0 "
        "(0: no clipping)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_grids_are_one_line_exit_2_and_write_nothing(
    tmp_path: Path, text: str, message: str
) -> None:
    db = str(tmp_path / "runs.db")
    open_engine(db)
    grid = write(tmp_path, text)
    code, out = enqueue(str(grid), "--db", db)
    assert code == 2, out
    assert out.startswith(f"error: {tmp_path}/{message}"), out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert sum(queue_status(open_engine(db)).counts.values()) == 0


def test_the_tail_knob_is_part_of_a_jobs_identity(tmp_path: Path) -> None:
    # Spelled out, the default tail is the plain name: the same jobs; another tail is not.
    hashes = {}
    for dataset in ("synthetic", "synthetic:pose_zipf=1.5", "synthetic:pose_zipf=2.0"):
        grid = parse_grid(write(tmp_path, BASE.replace('"synthetic"', f'"{dataset}"', 1)))
        hashes[dataset] = {job.config_hash for job in grid.jobs}
        stored = {job.config["dataset"] for job in grid.jobs}
        assert stored == {"synthetic:pose_zipf=2" if "2.0" in dataset else "synthetic"}
    assert hashes["synthetic"] == hashes["synthetic:pose_zipf=1.5"]
    assert not hashes["synthetic"] & hashes["synthetic:pose_zipf=2.0"]


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(GridError, match="no such grid file; see grids/demo.toml for an example"):
        parse_grid(tmp_path / "nope.toml")


def test_shipped_grids_parse() -> None:
    root = Path(__file__).resolve().parents[1]
    demo = parse_grid(root / "grids" / "demo.toml")
    assert demo.jobs and demo.jobs[0].config["dataset"] == "synthetic"
    paper = parse_grid(root / "grids" / "paper.toml")
    assert {j.model for j in paper.jobs} == {
        "B-6/Wi-256",
        "B-12/Wi-256",
        "B-6/Wi-512",
        "B-12/Wi-512",
        "B-6/Wi-1024",
        "B-12/Wi-1024",
    }
    assert paper.jobs[0].epochs == [50, 100, 200, 400, 800]
    assert paper.jobs[0].config["classes"] == 11230


def test_paper_dry_run_shows_the_authors_recipe_with_every_default(tmp_path: Path) -> None:
    import json

    root = Path(__file__).resolve().parents[1]
    db = str(tmp_path / "runs.db")
    code, out = enqueue(str(root / "grids" / "paper.toml"), "--db", db, "--dry-run", "--json")
    assert code == 0, out
    recipe = json.loads(out)["recipe"]
    train, probe = recipe["train"], recipe["probe"]
    assert train["crop_scale"] == [0.08, 1.0] and train["crop_ratio"] == [0.75, 4 / 3]
    assert train["precision"] == "tf32"
    # Keyed as in the grid file, every default filled in (the paper grid sets few of them).
    assert set(train) == set(TRAIN_DEFAULTS) and train["batch_size"] == 16384
    assert probe["method"] == "lion" and probe["targets"] == ["cifar10", "cifar100", "imagenet1k"]
    assert probe["settings"] == {
        "lr": 1e-5,
        "weight_decay": 0.0,
        "epochs": 50,
        "batch_size": 4096,
        "label_smoothing": 0.3,
        "clip": 1.0,
        "augment": True,
    }


def test_dry_run_recipe_keeps_swept_lists_and_subset_settings(tmp_path: Path) -> None:
    text = BASE.replace("batch_size = 32", "batch_size = [32, 64]") + (
        "settings = { train_examples = 50 }\n"
    )
    recipe = parse_grid(write(tmp_path, text)).recipe
    assert recipe["train"]["batch_size"] == [32, 64]
    assert recipe["probe"]["settings"] == {
        "penalties": list(DEFAULT_PENALTIES),
        "holdout": 0.1,
        "train_examples": 50,
    }
