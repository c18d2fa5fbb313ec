"""`scalelab prepare ...`: summary line, --json, progress on stderr, one-line errors."""

from __future__ import annotations

import json

from data_formats import write_cifar10, write_jpeg_tree
from typer.testing import CliRunner

from scalelab.cli import app

runner = CliRunner()


def test_prepare_cifar10_prints_a_summary(tmp_path):
    write_cifar10(tmp_path / "raw")
    result = runner.invoke(
        app, ["prepare", "cifar10", str(tmp_path / "raw"), "--data-root", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "prepared cifar10: train 30, test 10 images of 32x32, 10 classes"
    )


def test_prepare_imagenet21k_json_and_progress(tmp_path):
    write_jpeg_tree(tmp_path / "raw", {"a": 3, "b": 3})
    (tmp_path / "raw" / "a" / "bad.jpg").write_bytes(b"nope")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "prepare",
            "imagenet21k",
            str(tmp_path / "raw"),
            "--out",
            str(out),
            "--resolution",
            "8",
            "--heldout-fraction",
            "0.3",
            "--workers",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # 7 files, 2 held out (30%), one unreadable: 6 images kept in all.
    assert sum(report["counts"].values()) == 6 and report["skipped"] == 1
    assert "train: 5/5 images (100%)" in result.stderr
    assert "heldout: 2/2 images (100%)" in result.stderr


def test_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["prepare", "stl10", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tmp_path / 'nowhere'} is not a folder; pass the folder of the downloaded "
        "dataset\n"
    )


def test_every_prepare_command_has_an_example():
    for name in ("imagenet21k", "imagenet1k", "cifar10", "cifar100", "stl10", "tinyimagenet"):
        result = runner.invoke(app, ["prepare", name, "--help"])
        assert result.exit_code == 0 and "Example: scalelab prepare " + name in result.stdout
