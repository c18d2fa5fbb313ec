"""An evaluation-only change extends existing jobs (issue 13, item 6): a new probe target or
new probe settings are probed from the stored checkpoints by the workers, without retraining.
SQLite and PostgreSQL, real training."""

from __future__ import annotations

from pathlib import Path

import torch
from sqlalchemy import select
from test_worker import checkpoints, jobs, runner, tiny_grid

from scalelab.cli import app
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.queue import claim, complete
from scalelab.store.results import SETTINGS_KEY
from scalelab.store.schema import ProbeResultRow
from scalelab.train.job import JobControl, JobRunner

WORKER = ["run-worker", "--until-empty", "--device", "cpu", "--threads", "1"]
BOTH = '["synthetic-cifar10", "synthetic-cifar100"]'


def _grid(tmp_path: Path, targets: str, settings: str | None = None) -> Path:
    path = tiny_grid(tmp_path, epochs="[1, 2]", targets=targets)
    if settings is not None:  # [probe] is the grid's last table
        path.write_text(path.read_text() + f"settings = {settings}\n")
    return path


def _enqueue(grid: Path, db: str, *args: str) -> str:
    result = runner.invoke(app, ["enqueue", str(grid), "--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[-1]


def _work(db: str, workdir: Path) -> None:
    result = runner.invoke(app, [*WORKER, "--db", db, "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output


def _probes(db: str) -> dict[tuple[float, str], ProbeResultRow]:
    with session_scope(open_engine(db), write=False) as session:
        rows = session.scalars(select(ProbeResultRow))
        return {(p.checkpoint.epochs, p.target): p for p in rows}


def test_a_new_target_is_probed_from_stored_checkpoints(tmp_path: Path, db_url: str) -> None:
    reference = str(tmp_path / "ref.db")
    _enqueue(_grid(tmp_path, BOTH), reference)
    _work(reference, tmp_path / "ref")

    _enqueue(_grid(tmp_path, '["synthetic-cifar10"]'), db_url)
    _work(db_url, tmp_path / "w")
    before_ckpts, before = checkpoints(db_url), _probes(db_url)

    line = "sweep tiny: {} 0 jobs, 1 already present (0 extended with new epochs); 1 extended "
    line += "with probe work on synthetic-cifar100"
    assert _enqueue(_grid(tmp_path, BOTH), db_url, "--dry-run") == line.format("would add")
    assert jobs(db_url)[0].status == "done"  # the dry run changed nothing
    assert _enqueue(_grid(tmp_path, BOTH), db_url) == line.format("added")
    assert jobs(db_url)[0].status == "queued"
    _work(db_url, tmp_path / "w")

    assert jobs(db_url)[0].status == "done"
    after = _probes(db_url)
    ckpts = checkpoints(db_url)
    assert [(c.id, c.wall_seconds) for c in ckpts] == [(c.id, c.wall_seconds) for c in before_ckpts]
    for key, row in before.items():  # the old target was not probed again
        assert after[key].id == row.id
    ref = _probes(reference)
    assert sorted(after) == sorted(ref)
    for key in after:  # the same weights probed: the errors of a study that had both targets
        assert after[key].error == ref[key].error


def test_new_probe_settings_probe_every_target_again(tmp_path: Path, db_url: str) -> None:
    _enqueue(_grid(tmp_path, BOTH), db_url)
    _work(db_url, tmp_path / "w")
    before = _probes(db_url)
    assert all(p.details[SETTINGS_KEY] == {} for p in before.values())
    out = _enqueue(_grid(tmp_path, BOTH, "{ train_examples = 300 }"), db_url)
    assert out.endswith("; 1 extended with probe work on synthetic-cifar10, synthetic-cifar100")
    _work(db_url, tmp_path / "w")
    after = _probes(db_url)
    assert sorted(after) == sorted(before)
    for key, row in after.items():
        assert row.details[SETTINGS_KEY] == {"train_examples": 300}
        assert row.details["train_examples"] == 300 != before[key].details["train_examples"]


def test_a_target_added_while_the_job_runs_is_probed_before_it_is_done(
    tmp_path: Path, db_url: str
) -> None:
    _enqueue(_grid(tmp_path, '["synthetic-cifar10"]'), db_url)
    engine = open_engine(db_url)
    lease = claim(engine, "w")
    added: list[str] = []

    def enqueue_meanwhile(info: dict) -> None:
        if info["phase"] == "evaluate" and not added:  # the job is running: not requeued
            added.append(_enqueue(_grid(tmp_path, BOTH), db_url))

    control = JobControl(stop_reason=lambda: None, lease_lost=lambda: False)
    control.progress = enqueue_meanwhile
    runner_ = JobRunner(
        engine, lease, device=torch.device("cpu"), workdir=tmp_path / "w", lease_s=60,
        control=control,
    )  # fmt: skip
    runner_.run()
    complete(engine, lease)
    assert added[0].endswith("; 1 extended with probe work on synthetic-cifar100")
    assert sorted(_probes(db_url)) == [
        (t, target) for t in (1.0, 2.0) for target in ("synthetic-cifar10", "synthetic-cifar100")
    ]
