"""`scalelab prepare` on tiny datasets in each real layout: counts, labels, pixels, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_formats import (
    save_jpeg,
    write_cifar10,
    write_cifar100,
    write_jpeg_tree,
    write_stl10,
    write_tinyimagenet,
)

from scalelab.data import downstream_source, prepare_imagenet21k, prepare_target
from scalelab.data import prepare as prepare_module
from scalelab.data.loaders import ffcv_available, make_loader
from scalelab.data.readers import decode_image
from scalelab.data.sources import pretraining_source
from scalelab.errors import DataError


@pytest.mark.parametrize(
    ("target", "writer", "classes"),
    [("cifar10", write_cifar10, 10), ("cifar100", write_cifar100, 100), ("stl10", write_stl10, 10)],
)
def test_array_formats_round_trip_exactly(tmp_path, target, writer, classes):
    expected = writer(tmp_path / "raw")
    report = prepare_target(target, tmp_path / "raw", tmp_path / "data", workers=1)
    assert report.counts == {split: len(expected[split][1]) for split in ("train", "test")}
    for split in ("train", "test"):
        source = downstream_source(target, split, 64, data_root=tmp_path / "data")
        images, labels = expected[split]
        assert source.num_classes == classes
        assert source.resolution == images.shape[1]  # native: 32 for CIFAR, 96 for STL10
        np.testing.assert_array_equal(source.take(np.arange(len(source))), images)
        np.testing.assert_array_equal(source.labels, labels)
    meta = json.loads((tmp_path / "data" / target / "meta.json").read_text())
    assert meta["resize"] == "none (native)"
    assert not (tmp_path / "data" / target / ".partial").exists()


def test_each_target_uses_its_own_published_statistics(tmp_path):
    write_cifar10(tmp_path / "c10")
    write_cifar100(tmp_path / "c100")
    prepare_target("cifar10", tmp_path / "c10", tmp_path / "data", workers=1)
    prepare_target("cifar100", tmp_path / "c100", tmp_path / "data", workers=1)
    c10 = downstream_source("cifar10", "train", 64, data_root=tmp_path / "data")
    c100 = downstream_source("cifar100", "train", 64, data_root=tmp_path / "data")
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2470, 0.2435, 0.2616)
    assert c100.mean == (0.5071, 0.4865, 0.4409) and c100.std == (0.2673, 0.2564, 0.2762)


def test_tinyimagenet_layout(tmp_path):
    wnids = ["n02", "n01", "n03"]
    expected = write_tinyimagenet(tmp_path / "raw", wnids)
    report = prepare_target("tinyimagenet", tmp_path / "raw", tmp_path / "data", workers=1)
    train = downstream_source("tinyimagenet", "train", 64, data_root=tmp_path / "data")
    test = downstream_source("tinyimagenet", "test", 64, data_root=tmp_path / "data")
    assert report.counts == {"train": expected["train"], "test": 6}
    assert train.num_classes == 3 and train.resolution == 64
    np.testing.assert_array_equal(np.bincount(train.labels), [3, 3, 3])
    np.testing.assert_array_equal(test.labels, expected["test_labels"])
    assert train.take(np.arange(2)).shape == (2, 64, 64, 3)


def test_imagenet21k_resize_crop_heldout_and_metadata(tmp_path):
    write_jpeg_tree(tmp_path / "raw", {"n001": 6, "n002": 4, "n003": 10}, size=(80, 60))
    report = prepare_imagenet21k(
        tmp_path / "raw", tmp_path / "out", resolution=16, heldout_fraction=0.25, workers=2
    )
    assert report.counts == {"train": 15, "heldout": 5}
    train = pretraining_source(str(tmp_path / "out"), "train", 16)
    heldout = pretraining_source(str(tmp_path / "out"), "heldout", 16)
    assert train.num_classes == 3 and train.take(np.arange(3)).shape == (3, 16, 16, 3)
    # Held out: stratified, 25% of 6/4/10 is 1.5/1/2.5 -> largest remainders give 5 in all.
    assert sorted(np.bincount(heldout.labels, minlength=3) + np.bincount(train.labels)) == [
        4,
        6,
        10,
    ]
    assert np.all(np.abs(np.bincount(heldout.labels) - np.array([6, 4, 10]) / 4) < 1)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["resize"].startswith("shorter side to 16 pixels with PIL bicubic")
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == ["n001", "n002", "n003"]
    # The stored pixels are exactly what decode_image gives for the same file.
    first = sorted((tmp_path / "raw" / "n001").iterdir())
    pixels, status = decode_image(first[0], 16)
    assert status == "ok"
    assert any(np.array_equal(pixels, image) for image in train.take(np.arange(len(train))))


def test_bad_images_are_converted_or_skipped_and_reported(tmp_path):
    raw = tmp_path / "raw"
    write_jpeg_tree(raw, {"a": 5, "b": 5})
    save_jpeg(raw / "a" / "gray.jpg", (50, 50), 1, mode="L")
    save_jpeg(raw / "b" / "cmyk.jpg", (50, 50), 2, mode="CMYK")
    (raw / "a" / "corrupt.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = (raw / "b" / "b_0.JPEG").read_bytes()
    (raw / "b" / "truncated.jpeg").write_bytes(good[: len(good) // 3])
    report = prepare_imagenet21k(raw, tmp_path / "out", resolution=16, heldout_fraction=0.2)
    assert report.converted == 2
    assert report.skipped == 2
    assert sorted(p.split("/")[-1] for p in report.skipped_files) == [
        "corrupt.JPEG",
        "truncated.jpeg",
    ]
    assert sum(report.counts.values()) == 12
    assert "converted 2 non-RGB images; skipped 2 unreadable images" in report.summary()


def test_interrupted_preparation_resumes_and_is_never_read_as_complete(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    write_jpeg_tree(raw, {"a": 7, "b": 7})
    monkeypatch.setattr(prepare_module, "SHARD_SIZE", 4)
    real_decode = prepare_module._decode_shard
    calls = []

    def crash_after_two(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task[0].name)
        return real_decode(task)

    monkeypatch.setattr(prepare_module, "_decode_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        prepare_imagenet21k(raw, tmp_path / "out", resolution=8, heldout_fraction=0.2, workers=1)
    assert not (tmp_path / "out" / "meta.json").exists()
    with pytest.raises(DataError) as err:
        pretraining_source(str(tmp_path / "out"), "train", 8)
    assert str(err.value) == (
        f"{tmp_path / 'out'} is an interrupted preparation (no meta.json); run "
        f"`scalelab prepare imagenet21k SRC --out {tmp_path / 'out'}` again to resume it"
    )

    resumed = []
    monkeypatch.setattr(
        prepare_module,
        "_decode_shard",
        lambda task: resumed.append(task[0].name) or real_decode(task),
    )
    report = prepare_imagenet21k(
        raw, tmp_path / "out", resolution=8, heldout_fraction=0.2, workers=1
    )
    assert sum(report.counts.values()) == 14
    assert "train-shard-000000.npz" not in resumed and "train-shard-000001.npz" not in resumed
    assert not (tmp_path / "out" / ".partial").exists()


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing is not a folder; pass a folder of class folders"):
        prepare_imagenet21k(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty has no class folders"):
        prepare_imagenet21k(tmp_path / "empty", tmp_path / "out")
    write_jpeg_tree(tmp_path / "raw", {"a": 2})
    (tmp_path / "raw" / "b").mkdir()
    with pytest.raises(DataError, match=r"class folder .*raw/b has no images; remove it or add"):
        prepare_imagenet21k(tmp_path / "raw", tmp_path / "out")
    with pytest.raises(DataError, match=r"does not hold data_batch_1.*; pass the dataset's folder"):
        prepare_target("cifar10", tmp_path / "raw", tmp_path / "data")
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


def test_already_prepared_and_resolution_mismatch(tmp_path):
    write_jpeg_tree(tmp_path / "raw", {"a": 4, "b": 4})
    prepare_imagenet21k(tmp_path / "raw", tmp_path / "out", resolution=8, heldout_fraction=0.25)
    with pytest.raises(DataError, match="is already prepared; delete it first"):
        prepare_imagenet21k(tmp_path / "raw", tmp_path / "out", resolution=8)
    with pytest.raises(DataError) as err:
        pretraining_source(str(tmp_path / "out"), "train", 16)
    assert str(err.value) == (
        f"{tmp_path / 'out'} was prepared at 8x8, not 16x16; use resolution 8 or run "
        "`scalelab prepare imagenet21k SRC --out DIR --resolution 16`"
    )


def test_imagenet1k_class_folders_resized(tmp_path):
    write_jpeg_tree(tmp_path / "raw" / "train", {"n1": 3, "n2": 3}, size=(40, 90))
    write_jpeg_tree(tmp_path / "raw" / "val", {"n1": 1, "n2": 2}, size=(90, 40))
    report = prepare_target("imagenet1k", tmp_path / "raw", tmp_path / "data", resolution=16)
    assert report.counts == {"train": 6, "test": 3} and report.resolution == 16
    test = downstream_source("imagenet1k", "test", 64, data_root=tmp_path / "data")
    np.testing.assert_array_equal(test.labels, [0, 1, 1])
    assert test.take(np.arange(3)).shape == (3, 16, 16, 3)


@pytest.mark.skipif(not ffcv_available(), reason="ffcv is not installed")
def test_imagenet21k_beton_keeps_the_aspect_ratio_and_crops_at_load(tmp_path):
    import cv2
    from ffcv.reader import Reader
    from PIL import Image

    write_jpeg_tree(tmp_path / "raw", {"n001": 6, "n002": 6}, size=(64, 32))  # width 2 : 1
    out = tmp_path / "out"
    prepare_imagenet21k(tmp_path / "raw", out, resolution=16, heldout_fraction=0.25, workers=1)
    # The authors' beton: RGBImageField(max_resolution=16) keeps 2:1, the longer side 16.
    image = Reader(str(out / "train.beton")).metadata["f0"]
    assert set(zip(image["height"].tolist(), image["width"].tolist(), strict=True)) == {(8, 16)}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["beton_layout"].startswith("aspect ratio kept, longer side 16 pixels")
    train = pretraining_source(str(out), "train", 16)
    assert train.take(np.arange(2)).shape == (2, 16, 16, 3)  # the memmap fallback: squares
    crop = ((0.08, 1.0), (3 / 4, 4 / 3))
    loader = make_loader(
        train, np.arange(9), 3, "cpu", shuffle=True, seed=0, drop_last=True, crop=crop
    )
    assert loader.crops_done and [x.shape for x, _ in loader] == [(3, 3, 16, 16)] * 3
    # Held out (no crop asked): the ratio-1 centre crop, resized as FFCV does (cv2 INTER_AREA).
    heldout = pretraining_source(str(out), "heldout", 16)
    centre = make_loader(
        heldout, np.arange(len(heldout)), 3, "cpu", shuffle=False, seed=0, drop_last=False
    )
    assert not centre.crops_done
    (x, _), *_ = list(centre)
    got = x[0].permute(1, 2, 0).numpy().astype(int)  # (16, 16, 3)

    def centre_crop(path):  # the beton's 8x16 image, its centre 8x8, resized to 16x16
        pixels = np.asarray(Image.open(path).convert("RGB"))
        stored = cv2.resize(pixels, (16, 8), interpolation=cv2.INTER_AREA)
        return cv2.resize(stored[:, 4:12], (16, 16), interpolation=cv2.INTER_AREA).astype(int)

    gaps = [np.abs(got - centre_crop(p)).max() for p in (tmp_path / "raw").rglob("*.JPEG")]
    assert min(gaps) <= 2
