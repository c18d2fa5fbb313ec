"""A job builds its training loader once (FFCV compiles and checks a loader on every build)."""

from __future__ import annotations

from pathlib import Path

from test_worker import checkpoints, enqueue, run_worker_here, tiny_grid

import scalelab.train.job as job_module


def test_one_training_loader_serves_every_epoch_of_a_job(tmp_path: Path, monkeypatch) -> None:
    built = []
    real = job_module.make_loader

    def make_loader(*args, **kwargs):
        loader = real(*args, **kwargs)
        if kwargs["shuffle"]:  # the training loader (evaluation ones are not shuffled)
            built.append(loader)
        return loader

    monkeypatch.setattr(job_module, "make_loader", make_loader)
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, epochs="[1, 2, 3]"), db)
    assert run_worker_here(db, tmp_path).exit_code == 0
    assert [c.epochs for c in checkpoints(db)] == [1, 2, 3]
    assert len(built) == 1 and built[0].epoch == 3  # one loader, through epochs 0, 1 and 2
