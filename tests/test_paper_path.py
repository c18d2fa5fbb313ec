"""The paper's real-data path, end to end, as a new user runs it (issue 12).

Raw data in the official on-disk layouts (an ImageNet-21k-style JPEG tree with greyscale and
corrupt files, CIFAR-10 and CIFAR-100 pickles) -> `scalelab prepare` -> `enqueue` a grid over
the prepared folder with those real probe targets -> real `run-worker` processes -> `fit` ->
`plot`. Twice: through FFCV's loader and through the memory-mapped one
(SCALELAB_LOADER=ffcv / array). The FFCV beton keeps each image's aspect ratio and crops at
load, as the authors' loader does; the memory map stores squares (docs/DEVIATIONS.md), so the
two studies train on different pixels: they must agree in shape and in every number that does
not depend on the pixels (compute, parameters, FLOP(f), steps), not in the errors.

Kept small for CI: one model, two N, two T (4 checkpoints per target), so `fit` refuses the
4-parameter compute law with its one-line reason (5 frontier points needed) and `plot` draws
the points without a law; both must do so identically for the two studies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from data_formats import save_jpeg, write_cifar10, write_cifar100, write_jpeg_tree
from test_worker import jobs
from typer.testing import CliRunner

from scalelab import load_runs
from scalelab.cli import app
from scalelab.data.loaders import ffcv_available

pytestmark = pytest.mark.skipif(not ffcv_available(), reason="ffcv is not installed")
runner = CliRunner()
CLASSES = 6

GRID = """
name = "paper-path"
dataset = "{dataset}"
resolution = 64
models = ["B-1/Wi-16"]
examples = [24, 48]
epochs = [1, 2]
seeds = [0]

[train]
batch_size = 16
heldout_examples = 12

[probe]
targets = ["cifar10", "cifar100"]
method = "ridge"
"""


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Raw sets written in their official layouts, then `scalelab prepare`d; returns the root."""
    root = tmp_path_factory.mktemp("paper")
    raw = root / "raw"
    write_jpeg_tree(raw / "imagenet21k", {f"n{c:08d}": 10 for c in range(CLASSES)})
    save_jpeg(raw / "imagenet21k" / "n00000000" / "grey.JPEG", (70, 90), 99, mode="L")
    (raw / "imagenet21k" / "n00000001" / "corrupt.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    write_cifar10(raw, per_batch=8, n_test=20)
    write_cifar100(raw, n_train=40, n_test=20)
    report = json.loads(cli(
        "prepare", "imagenet21k", str(raw / "imagenet21k"), "--out", str(root / "in21k"),
        "--resolution", "64", "--heldout-fraction", "0.2", "--workers", "1", "--json",
    ))  # fmt: skip
    # 61 JPEGs: the greyscale one converted to RGB, the corrupt one skipped; 20% held out.
    assert (report["converted"], report["skipped"], report["beton"]) == (1, 1, True)
    assert report["counts"] == {"train": 50, "heldout": 11}
    for target, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        cli("prepare", target, str(raw / folder), "--data-root", str(root / "data"))
    for split in ("train", "heldout"):
        assert (root / "in21k" / f"{split}.beton").exists()
        assert (root / "in21k" / f"{split}_images.npy").exists()
    return root


def run_study(root: Path, loader: str) -> tuple[str, float]:
    """Enqueue the grid, drain it with two real worker processes, fit and plot; (db, seconds)."""
    start = time.perf_counter()
    study = root / loader
    study.mkdir()
    db = str(study / "runs.db")
    grid = study / "grid.toml"
    grid.write_text(GRID.format(dataset=root / "in21k"))
    cli("enqueue", str(grid), "--db", db)
    env = {
        **os.environ,
        "SCALELAB_LOADER": loader,
        "SCALELAB_DATA": str(root / "data"),
        "SCALELAB_WORKERS_PER_HOST": "2",
    }
    command = [sys.executable, "-m", "scalelab.cli", "run-worker", "--until-empty"]
    command += ["--device", "cpu", "--db", db, "--workdir", str(study / "work")]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, out.decode()
    assert {job.status for job in jobs(db)} == {"done"}
    return db, time.perf_counter() - start


def fit_and_plot(db: str, plots: Path) -> list[tuple[int, str]]:
    """`fit` every target, then `plot fig1`; the fits' (exit code, output) for comparison."""
    fits = []
    for target in ("cifar10", "cifar100", "upstream"):
        result = runner.invoke(app, ["fit", "--target", target, "--bootstrap", "20", "--db", db])
        assert result.exit_code == 2, result.output  # 4 points: too few, see the docstring
        assert result.stderr.startswith(
            "error: too few frontier points for the 4-parameter compute law: "
        )
        assert len(result.stderr.splitlines()) == 1  # one line, no traceback
        fits.append((result.exit_code, result.stderr))
    out = cli("plot", "fig1", "--target", "cifar10", "--out", str(plots), "--db", db)
    assert (plots / "fig1_cifar10.png").stat().st_size > 0, out
    return fits


def test_ffcv_and_memmap_studies_finish_with_the_same_records(prepared: Path) -> None:
    ffcv_db, ffcv_s = run_study(prepared, "ffcv")
    memmap_db, memmap_s = run_study(prepared, "array")
    print(f"paper path: FFCV study {ffcv_s:.1f} s, memmap study {memmap_s:.1f} s")
    key = ["model", "examples", "epochs", "target"]
    ffcv, memmap = (
        load_runs(db).sort_values(key).reset_index(drop=True) for db in (ffcv_db, memmap_db)
    )
    # 2 N x 2 T checkpoints, each with two probe targets and the upstream error.
    assert len(ffcv) == 2 * 2 * 3
    assert set(ffcv["target"]) == {"cifar10", "cifar100", "upstream"}
    assert ffcv["error"].between(0, 1).all() and ffcv["train_loss"].gt(0).all()
    assert list(ffcv.columns) == list(memmap.columns)
    pd.testing.assert_frame_equal(ffcv[key], memmap[key])
    for column in ("compute", "params", "flops", "batch_size"):
        pd.testing.assert_series_equal(ffcv[column], memmap[column])
    for study in (ffcv, memmap):
        assert study["upstream_error"].between(0, 1).all()
    # The refusals name frontier points, which depend on the errors: compare only the codes.
    ffcv_fits = fit_and_plot(ffcv_db, prepared / "ffcv" / "plots")
    memmap_fits = fit_and_plot(memmap_db, prepared / "array" / "plots")
    assert [code for code, _ in ffcv_fits] == [code for code, _ in memmap_fits]
