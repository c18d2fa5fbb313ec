"""Readers for the official raw layouts: CIFAR pickles, STL10 binaries, JPEG folder trees.

Array formats (CIFAR, STL10) are read whole into (N, H, W, 3) uint8 at native resolution.
Folder formats (ImageNet-21k, ImageNet-1k, TinyImageNet) are listed as (paths, labels) and
decoded shard by shard by scalelab.data.prepare; ``decode_image`` is the one place where a
JPEG becomes pixels, so its resize and its handling of bad files hold for every set.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scalelab.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
RESIZE_POLICY = (
    "shorter side to {r} pixels with PIL bicubic resampling (antialiased), "
    "then the centre {r}x{r} crop"
)


@dataclass
class ArraySplit:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64


@dataclass
class FileSplit:
    paths: list[Path]
    labels: np.ndarray  # (N,) int64


def _find(src: Path, names: tuple[str, ...], subdirs: tuple[str, ...]) -> Path:
    """The folder under ``src`` (itself or a known subfolder) that holds all of ``names``."""
    if not src.is_dir():
        raise DataError(f"{src} is not a folder; pass the folder of the downloaded dataset")
    for folder in (src, *(src / sub for sub in subdirs)):
        if all((folder / name).exists() for name in names):
            return folder
    raise DataError(f"{src} does not hold {', '.join(names)}; pass the dataset's folder")


def _unpickle(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar_images(rows: np.ndarray) -> np.ndarray:
    # Each row is 3072 bytes: the red plane, then green, then blue, each 32x32 row-major.
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def read_cifar10(src: Path) -> tuple[dict[str, ArraySplit], list[str]]:
    """CIFAR-10 python batches: data_batch_1..5 (train), test_batch, batches.meta."""
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    folder = _find(src, (*train_files, "test_batch"), ("cifar-10-batches-py",))
    splits = {}
    for split, files in (("train", train_files), ("test", ("test_batch",))):
        batches = [_unpickle(folder / name) for name in files]
        splits[split] = ArraySplit(
            _cifar_images(np.concatenate([b[b"data"] for b in batches])),
            np.concatenate([b[b"labels"] for b in batches]).astype(np.int64),
        )
    return splits, _cifar_names(folder / "batches.meta", b"label_names", 10)


def _cifar_names(meta: Path, key: bytes, count: int) -> list[str]:
    """Class names from a CIFAR meta file; their indices when the file is absent."""
    if not meta.exists():
        return [str(i) for i in range(count)]
    return [name.decode() for name in _unpickle(meta)[key]]


def read_cifar100(src: Path) -> tuple[dict[str, ArraySplit], list[str]]:
    """CIFAR-100 python files: train and test, with fine_labels (100 classes)."""
    folder = _find(src, ("train", "test"), ("cifar-100-python",))
    splits = {}
    for split in ("train", "test"):
        batch = _unpickle(folder / split)
        splits[split] = ArraySplit(
            _cifar_images(np.asarray(batch[b"data"])),
            np.asarray(batch[b"fine_labels"], dtype=np.int64),
        )
    return splits, _cifar_names(folder / "meta", b"fine_label_names", 100)


def read_stl10(src: Path) -> tuple[dict[str, ArraySplit], list[str]]:
    """STL10 binaries: {train,test}_X.bin (column-major 3x96x96 uint8), _y.bin labels 1..10."""
    names = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")
    folder = _find(src, names, ("stl10_binary",))
    splits = {}
    for split in ("train", "test"):
        raw = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
        if raw.size % (3 * 96 * 96):
            raise DataError(f"{folder / f'{split}_X.bin'} is truncated; download it again")
        # Column-major per image: axes are (channel, x, y); transpose to (y, x, channel).
        images = np.ascontiguousarray(raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1))
        labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
        if len(labels) != len(images):
            raise DataError(
                f"{folder}: {split}_X.bin has {len(images)} images but {split}_y.bin "
                f"{len(labels)} labels; download the set again"
            )
        splits[split] = ArraySplit(images, labels)
    class_file = folder / "class_names.txt"
    classes = class_file.read_text().split() if class_file.exists() else [str(i) for i in range(10)]
    return splits, classes


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_class_folders(root: Path) -> tuple[FileSplit, list[str]]:
    """A folder of class folders of images; classes in sorted order. Empty classes are errors."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass a folder of class folders of JPEGs")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders; pass a folder of class folders of JPEGs")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = _image_files(root / name)
        if not files:
            raise DataError(
                f"class folder {root / name} has no images; remove it or add its images"
            )
        paths += files
        labels += [label] * len(files)
    return FileSplit(paths, np.asarray(labels, dtype=np.int64)), classes


def list_tinyimagenet(src: Path) -> tuple[dict[str, FileSplit], list[str]]:
    """TinyImageNet: train/<wnid>/images/*.JPEG; val/images + val_annotations.txt as "test"."""
    folder = _find(src, ("wnids.txt", "train", "val"), ("tiny-imagenet-200",))
    classes = sorted((folder / "wnids.txt").read_text().split())
    index = {wnid: i for i, wnid in enumerate(classes)}
    paths: list[Path] = []
    labels: list[int] = []
    for wnid in classes:
        files = _image_files(folder / "train" / wnid / "images")
        if not files:
            raise DataError(f"{folder / 'train' / wnid / 'images'} has no images; restore it")
        paths += files
        labels += [index[wnid]] * len(files)
    train = FileSplit(paths, np.asarray(labels, dtype=np.int64))
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.exists():
        raise DataError(f"{annotations} is missing; restore the val folder of TinyImageNet")
    val_paths, val_labels = [], []
    for line in annotations.read_text().splitlines():
        if not line.strip():
            continue
        name, wnid = line.split("\t")[:2]
        if wnid not in index:
            raise DataError(f"{annotations}: {name} has class {wnid} not in wnids.txt")
        val_paths.append(folder / "val" / "images" / name)
        val_labels.append(index[wnid])
    return {"train": train, "test": FileSplit(val_paths, np.asarray(val_labels, np.int64))}, (
        classes
    )


def list_imagenet1k(src: Path) -> tuple[dict[str, FileSplit], list[str]]:
    """ImageNet-1k as train/<wnid>/ and val/<wnid>/ class folders; val becomes "test"."""
    train, classes = list_class_folders(src / "train")
    test, test_classes = list_class_folders(src / "val")
    if test_classes != classes:
        raise DataError(
            f"{src / 'val'} has {len(test_classes)} class folders but {src / 'train'} has "
            f"{len(classes)}; sort val into the same class folders as train"
        )
    return {"train": train, "test": test}, classes


def decode_image(path: Path, resolution: int | None) -> tuple[np.ndarray | None, str]:
    """(H, W, 3) uint8 and "ok" | "converted" (was not RGB) | "skipped" (unreadable).

    With ``resolution``, the image is resized as RESIZE_POLICY says; never raises for a bad
    file, so one corrupt JPEG cannot stop an 11M-image preparation.
    """
    try:
        with Image.open(path) as image:
            status = "ok" if image.mode == "RGB" else "converted"
            if resolution is not None:
                # Decode at a reduced JPEG scale when the file is much larger than needed
                # (DCT scaling keeps at least 2x the target, then bicubic does the rest).
                image.draft("RGB", (2 * resolution, 2 * resolution))
            image = image.convert("RGB")
            if resolution is not None:
                image = _resize_centre_crop(image, resolution)
            return np.asarray(image, dtype=np.uint8), status
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None, "skipped"


def _resize_centre_crop(image: Image.Image, resolution: int) -> Image.Image:
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))
