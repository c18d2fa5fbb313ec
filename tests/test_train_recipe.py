"""The training loop follows the authors' loader and precision, and never waits for the device.

Dropped last batch, steps per epoch and precision recorded, the loss read one step late.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from scalelab.errors import DataError
from scalelab.grid import config_hash, parse_grid
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.queue import claim
from scalelab.store.schema import Job
from scalelab.store.sweeps import enqueue
from scalelab.train import checkpoint
from scalelab.train.job import Diverged, JobControl, JobRunner

GRID = """
name = "recipe"
dataset = "synthetic"
resolution = 16
models = ["B-1/Wi-8"]
examples = [{examples}]
epochs = [1]

[train]
batch_size = 32
heldout_examples = 64
{extra}
"""


def runner_for(tmp_path: Path, examples: int = 100, extra: str = "") -> tuple[JobRunner, list]:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(examples=examples, extra=extra))
    engine = open_engine(str(tmp_path / "runs.db"))
    enqueue(engine, parse_grid(grid))
    lease = claim(engine)
    assert lease is not None
    seen: list[dict] = []
    control = JobControl(stop_reason=lambda: None, lease_lost=lambda: False, progress=seen.append)
    job = JobRunner(
        engine, lease, device=torch.device("cpu"), workdir=tmp_path, lease_s=60, control=control
    )
    return job, seen


def test_an_epoch_drops_the_last_partial_batch_and_records_its_steps(tmp_path: Path) -> None:
    job, seen = runner_for(tmp_path)  # N = 100, batch 32: 3 steps, not 4
    job.run()
    steps = [info for info in seen if info["phase"] == "train"]
    assert [info["batch"] for info in steps] == [1, 2, 3]
    assert {info["batches"] for info in steps} == {3}
    saved = checkpoint.load(next(tmp_path.rglob("T1.pt")))
    assert saved["steps_per_epoch"] == 3 and saved["loss_count"] == 0  # reset at the epoch end
    assert saved["precision"] == "tf32"  # the run's precision, beside its weights
    with session_scope(job.engine, write=False) as session:
        config = session.scalars(select(Job)).one().config
    assert config["train"]["precision"] == "tf32"  # and in the job's provenance


def test_n_below_one_batch_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        runner_for(tmp_path, examples=20)
    assert str(exc.value) == (
        "N = 20 makes no full batch of 32 (the last partial batch is dropped, as the authors' "
        "loader does); lower [train] batch_size"
    )


def test_bf16_is_opt_in(tmp_path: Path) -> None:
    job, _ = runner_for(tmp_path, extra='precision = "bf16"')
    assert job.step.precision == "bf16" and job.step.bf16


def test_the_loss_is_read_one_step_late_and_nan_names_its_own_step(tmp_path: Path) -> None:
    job, seen = runner_for(tmp_path)
    real_step, calls = job.step, []

    def step(x, y_soft):  # the real step, with the second one's loss turned to NaN
        loss = real_step(x, y_soft)
        calls.append(loss)
        return loss * float("nan") if len(calls) == 2 else loss

    job.step = step
    with pytest.raises(Diverged) as exc:
        job.run()
    assert str(exc.value) == "loss became nan at epoch 1, step 2; lower the learning rate"
    assert len(calls) == 3  # step 3 was already running when step 2's loss was read
    assert all(isinstance(loss, torch.Tensor) and loss.ndim == 0 for loss in calls)
    losses = [info["loss"] for info in seen if info["phase"] == "train"]
    assert losses[0] is None and losses[1] == pytest.approx(float(calls[0]))
    assert not list(tmp_path.rglob("latest.pt"))  # nothing after the NaN is saved


def _hash_before_new_keys(config: dict) -> str:
    """config_hash as written before `crop_ratio` and `precision` existed."""
    identity = {k: v for k, v in config.items() if k not in ("epochs", "probe")}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def test_new_recipe_keys_at_their_defaults_keep_older_jobs_identity(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(examples=100, extra=""))
    (job,) = parse_grid(grid).jobs
    older = json.loads(json.dumps(job.config))  # as an older version stored it
    del older["train"]["precision"], older["train"]["crop_ratio"]
    assert job.config_hash == config_hash(older) == _hash_before_new_keys(older)
    grid.write_text(GRID.format(examples=100, extra='precision = "bf16"'))
    (bf16,) = parse_grid(grid).jobs
    assert bf16.config_hash != job.config_hash  # a real change of recipe is a new job


def test_an_older_database_enqueued_again_gets_no_duplicates(db_url: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(examples=100, extra=""))
    plan = parse_grid(grid)
    engine = open_engine(db_url)
    enqueue(engine, plan)
    with session_scope(engine) as session:  # rewrite the row as an older version wrote it
        row = session.scalars(select(Job)).one()
        config = json.loads(json.dumps(row.config))
        del config["train"]["precision"], config["train"]["crop_ratio"]
        row.config, row.config_hash = config, _hash_before_new_keys(config)
    report = enqueue(engine, plan)
    assert (report.added, report.present) == (0, 1)
