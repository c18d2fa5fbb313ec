"""A dataset whose labels do not fit the grid's `classes` fails the job with one line.

On CUDA such a label is a device assert that breaks the worker's CUDA context; the check runs
before training, so the job is `failed` with the message instead.
"""

from __future__ import annotations

from pathlib import Path

from data_formats import write_jpeg_tree
from test_worker import enqueue, jobs, run_worker_here

from scalelab.data import prepare_imagenet21k

GRID = """
name = "labels"
dataset = "{dataset}"
resolution = 16
classes = {classes}
models = ["B-1/Wi-16"]
examples = [6]
epochs = [1]

[train]
batch_size = 3
heldout_examples = 3

[probe]
targets = []
"""


def test_labels_beyond_the_grids_classes_fail_the_job_before_training(
    tmp_path: Path, monkeypatch
) -> None:
    write_jpeg_tree(tmp_path / "raw", {"a": 4, "b": 4, "c": 4})
    # Memmap only: the check is the loaders' common ground, and a .beton costs seconds to write.
    monkeypatch.setattr("scalelab.data.loaders.ffcv_available", lambda: False)
    folder = tmp_path / "prepared"
    prepare_imagenet21k(tmp_path / "raw", folder, resolution=16, heldout_fraction=0.25, workers=1)
    db = str(tmp_path / "runs.db")
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(dataset=folder, classes=2))  # planned for 2 classes; there are 3
    enqueue(grid, db)
    result = run_worker_here(db, tmp_path)
    assert result.exit_code == 0, result.output
    (job,) = jobs(db)
    assert job.status == "failed"
    assert job.last_error == (
        "prepared has 3 classes (labels 0..2) but the grid's classes = 2; set classes = 3 in "
        "the grid (or leave it out) and enqueue it again"
    )
    assert not list((tmp_path / "work").rglob("*.pt"))  # nothing trained
