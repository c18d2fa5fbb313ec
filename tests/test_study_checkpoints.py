"""A checkpoint belongs to one study and one job (issue 13, item 1).

Real SQLite files and PostgreSQL databases, real worker processes sharing one workdir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from sqlalchemy import select
from test_worker import checkpoints, enqueue, jobs, runner, tiny_grid

from scalelab.cli import app
from scalelab.reprobe import reprobe
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.identity import code_identity, study_id
from scalelab.store.schema import ProbeResultRow

WORKER = ["run-worker", "--until-empty", "--device", "cpu", "--threads", "1"]


def _worker(db: str, workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scalelab.cli", *WORKER, "--db", db, "--workdir", str(workdir)],
        env={**os.environ, "SCALELAB_WORKERS_PER_HOST": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _results(db: str) -> list[tuple]:
    """Everything a study measured except timings: equal for runs of the same code."""
    with session_scope(open_engine(db), write=False) as session:
        rows = session.scalars(select(ProbeResultRow))
        probes = sorted((p.checkpoint.epochs, p.target, p.error) for p in rows)
    ckpts = [(c.epochs, c.train_loss, c.upstream_loss, c.upstream_error) for c in checkpoints(db)]
    return [*ckpts, *probes]


def test_two_studies_share_a_workdir_at_the_same_time(tmp_path: Path, db_url: str) -> None:
    grid = tiny_grid(tmp_path, epochs="[1, 2]", targets='["synthetic-cifar10"]')
    a, b, ref = str(tmp_path / "a.db"), db_url, str(tmp_path / "ref.db")
    for db in (a, b, ref):
        enqueue(grid, db)
    shared = tmp_path / "work"
    workers = [_worker(a, shared), _worker(b, shared)]
    # The clean reference: the same code in this process, alone in its own workdir.
    clean = runner.invoke(app, [*WORKER, "--db", ref, "--workdir", str(tmp_path / "clean")])
    assert clean.exit_code == 0, clean.output
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stdout.read()

    ids = {db: study_id(open_engine(db)) for db in (a, b)}
    assert ids[a] != ids[b]
    assert sorted(p.name for p in shared.iterdir()) == sorted(f"study-{i}" for i in ids.values())
    for db, study in ids.items():
        for ckpt in checkpoints(db):
            path = Path(ckpt.path)
            assert path.is_absolute() and path.parent == shared / f"study-{study}" / "job-1"
            saved = torch.load(path, weights_only=True)
            assert saved["provenance"]["study"] == study
            assert saved["provenance"]["job_id"] == 1
            # The T's time is this study's own measurement, saved with its own weights.
            assert saved["wall_seconds"] == ckpt.wall_seconds
    t1 = {db: next(c.wall_seconds for c in checkpoints(db) if c.epochs == 1) for db in ids}
    assert t1[a] != t1[b]
    assert _results(a) == _results(ref) and _results(b) == _results(ref)


def test_a_checkpoint_from_other_code_is_not_resumed(tmp_path: Path, db_url: str) -> None:
    reference = str(tmp_path / "ref.db")
    enqueue(tiny_grid(tmp_path, epochs="[1, 2]"), reference)
    args = [*WORKER, "--workdir", str(tmp_path / "w-ref")]
    assert runner.invoke(app, [*args, "--db", reference]).exit_code == 0

    enqueue(tiny_grid(tmp_path, epochs="[1]"), db_url)
    args = [*WORKER, "--workdir", str(tmp_path / "w")]
    assert runner.invoke(app, [*args, "--db", db_url]).exit_code == 0
    (t1,) = (Path(c.path) for c in checkpoints(db_url))
    state = torch.load(t1, weights_only=True)
    state["provenance"]["git_commit"] = "0123456789ab"  # as if written before an upgrade
    state["model"] = {k: torch.zeros_like(v) for k, v in state["model"].items()}
    torch.save(state, t1)

    enqueue(tiny_grid(tmp_path, epochs="[1, 2]"), db_url)
    result = runner.invoke(app, [*args, "--db", db_url])
    assert result.exit_code == 0, result.output
    mine = code_identity().git_commit
    assert (
        f"job 1: not resuming from {t1}: its git_commit is '0123456789ab', this job's is "
        f"'{mine}'; training from scratch\n"
    ) in result.stderr
    assert _results(db_url)[1:] == _results(reference)[1:]  # T=2 trained from scratch
    assert torch.load(t1, weights_only=True)["provenance"]["git_commit"] == mine  # replaced


def test_stored_paths_resolve_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, epochs="[1]", targets='["synthetic-cifar10"]'), db)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, [*WORKER, "--workdir", "work", "--db", db]).exit_code == 0
    (stored,) = (p for p in _results(db) if len(p) == 3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (again,) = reprobe(db, 1, "synthetic-cifar10", device="cpu")
    assert again.error == stored[2]


def test_db_copy_keeps_the_study_identity(tmp_path: Path, db_url: str) -> None:
    source = str(tmp_path / "source.db")
    enqueue(tiny_grid(tmp_path), source)
    result = runner.invoke(app, ["db", "copy", "--from", source, "--to", db_url])
    assert result.exit_code == 0, result.output
    assert study_id(open_engine(db_url)) == study_id(open_engine(source))
    assert jobs(db_url)[0].config_hash == jobs(source)[0].config_hash
    fresh = str(tmp_path / "fresh.db")
    enqueue(tiny_grid(tmp_path), fresh)
    assert study_id(open_engine(fresh)) != study_id(open_engine(source))
