"""A job builds its loaders once (FFCV compiles and checks a loader on every build)."""

from __future__ import annotations

from pathlib import Path

from test_worker import checkpoints, enqueue, run_worker_here, tiny_grid

import scalelab.train.job as job_module


def test_one_training_and_one_heldout_loader_serve_a_whole_job(tmp_path: Path, monkeypatch):
    built, heldout = [], []
    real = job_module.make_loader

    def make_loader(*args, **kwargs):
        loader = real(*args, **kwargs)
        (built if kwargs["shuffle"] else heldout).append(loader)  # only training shuffles
        return loader

    monkeypatch.setattr(job_module, "make_loader", make_loader)
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, epochs="[1, 2, 3]"), db)
    assert run_worker_here(db, tmp_path).exit_code == 0
    assert [c.epochs for c in checkpoints(db)] == [1, 2, 3]
    assert len(built) == 1 and built[0].epoch == 3  # one loader, through epochs 0, 1 and 2
    assert len(heldout) == 1 and heldout[0].epoch == 3  # one pass per evaluated T
