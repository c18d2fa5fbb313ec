"""Tiny datasets in the official raw layouts, for the data tests (not a test module itself).

Each writer returns what a correct reader must find, so tests compare against it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _pixels(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> CIFAR rows: red plane, green plane, blue plane, each row-major."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar10(root: Path, per_batch: int = 6, n_test: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        images, labels = _pixels(rng, n, 32), rng.integers(0, 10, n).tolist()
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": _rows(images), b"labels": labels}, f)
        split = "test" if name == "test_batch" else "train"
        expected[split][0].append(images)
        expected[split][1].extend(labels)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return {k: (np.concatenate(v[0]), np.asarray(v[1])) for k, v in expected.items()}


def write_cifar100(root: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    expected = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = _pixels(rng, n, 32), rng.integers(0, 100, n).tolist()
        coarse = [label // 5 for label in labels]
        with (folder / split).open("wb") as f:
            pickle.dump(
                {b"data": _rows(images), b"fine_labels": labels, b"coarse_labels": coarse}, f
            )
        expected[split] = (images, np.asarray(labels))
    with (folder / "meta").open("wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, f)
    return expected


def write_stl10(root: Path, n_train: int = 12, n_test: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    expected = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = _pixels(rng, n, 96)  # (N, y, x, c)
        labels = rng.integers(1, 11, n).astype(np.uint8)  # STL10 labels are 1..10
        # Column-major per image, as the official binaries: (c, x, y) order on disk.
        images.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        labels.tofile(folder / f"{split}_y.bin")
        expected[split] = (images, labels.astype(np.int64) - 1)
    (folder / "class_names.txt").write_text("\n".join(f"s{i}" for i in range(10)))
    return expected


def save_jpeg(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    """A smooth random picture (JPEG-friendly) of ``size`` (width, height) in ``mode``."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path, quality=95)


def write_jpeg_tree(root: Path, counts: dict[str, int], size: tuple[int, int] = (80, 60)) -> None:
    """A folder of class folders of JPEGs: counts[class] images each."""
    seed = 0
    for name, n in counts.items():
        for i in range(n):
            save_jpeg(root / name / f"{name}_{i}.JPEG", size, seed)
            seed += 1


def write_tinyimagenet(root: Path, wnids: list[str], per_class: int = 3, n_val: int = 6) -> dict:
    folder = root / "tiny-imagenet-200"
    (folder / "wnids.txt").parent.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids))
    seed = 100
    for wnid in wnids:
        for i in range(per_class):
            save_jpeg(folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (64, 64), seed)
            seed += 1
    lines, labels = [], []
    for i in range(n_val):
        wnid = wnids[i % len(wnids)]
        save_jpeg(folder / "val" / "images" / f"val_{i}.JPEG", (64, 64), seed + i)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
        labels.append(sorted(wnids).index(wnid))
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return {"train": per_class * len(wnids), "test_labels": np.asarray(labels)}
