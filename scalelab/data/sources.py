"""Image sources by name: the synthetic default and folders written by `scalelab prepare`.

A source has ``name``, ``num_classes``, ``resolution``, ``labels`` (N,) int64, ``mean`` and
``std`` (3 floats in [0, 1] pixel units), ``len()``, ``take(indices) -> (n, H, W, 3) uint8``
and ``beton`` (the FFCV file of the split, or None).

A prepared folder holds, per split, ``<split>_images.npy`` (N, H, W, 3) uint8 (memory-mapped
when read), ``<split>_labels.npy`` (N,) int64 and, when ffcv was installed at preparation,
``<split>.beton``; plus ``classes.json`` and ``meta.json``, which is written last, so a
folder without it is an interrupted preparation and never read as a dataset.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from scalelab.data import synthetic
from scalelab.data.subsets import checked_indices
from scalelab.errors import DataError

META_FILE = "meta.json"
CLASSES_FILE = "classes.json"
PARTIAL_DIR = ".partial"  # where `scalelab prepare` stages its work until meta.json is written
FORMAT = "scalelab-images/1"

# Real downstream targets: their splits and their own published per-channel statistics
# (the authors' code reuses CIFAR-10's for CIFAR-100 and ImageNet's for TinyImageNet; each
# set here is normalised with its own, as the issue asks).
REAL_TARGETS: dict[str, dict] = {
    "cifar10": {
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
    },
    "cifar100": {
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
    },
    "tinyimagenet": {
        "mean": (0.4802, 0.4481, 0.3975),
        "std": (0.2302, 0.2265, 0.2262),
    },
    "stl10": {
        "mean": (0.4467, 0.4398, 0.4066),
        "std": (0.2603, 0.2566, 0.2713),
    },
    "imagenet1k": {
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
}
# ImageNet-21k is normalised with ImageNet-1k's statistics, as in the authors' code.
IMAGENET21K_STATS = REAL_TARGETS["imagenet1k"]
DATA_TARGETS: tuple[str, ...] = (*synthetic.DOWNSTREAM_CLASSES, *REAL_TARGETS)
PRETRAINING_SPLITS = ("train", "heldout")
DOWNSTREAM_SPLITS = ("train", "test")


class ImageSource(Protocol):
    name: str
    num_classes: int
    resolution: int
    labels: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    beton: Path | None

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> np.ndarray: ...


@dataclass
class ArraySource:
    """One split of a prepared folder: a memory-mapped uint8 array and its labels."""

    name: str
    num_classes: int
    resolution: int
    labels: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    images: np.ndarray  # (N, H, W, 3) uint8, memory-mapped
    beton: Path | None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """(n, H, W, 3) uint8: the images at ``indices``."""
        indices = checked_indices(indices, len(self), self.name)
        return np.take(self.images, indices, axis=0)


def default_data_root(data_root: Path | str | None = None) -> Path:
    """``data_root``, else $SCALELAB_DATA, else ./data."""
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get("SCALELAB_DATA", "data"))


def read_meta(folder: Path, prepare_command: str) -> dict:
    """The metadata of a prepared folder; a DataError naming ``prepare_command`` if absent."""
    meta_path = folder / META_FILE
    if not meta_path.exists():
        if (folder / PARTIAL_DIR).exists():
            raise DataError(
                f"{folder} is an interrupted preparation (no {META_FILE}); "
                f"run `{prepare_command}` again to resume it"
            )
        raise DataError(f"{folder} is not prepared; run `{prepare_command}`")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise DataError(
            f"{meta_path} has format {meta.get('format')!r}, not {FORMAT!r}; "
            f"delete {folder} and run `{prepare_command}`"
        )
    return meta


def open_split(folder: Path, split: str, name: str, prepare_command: str) -> ArraySource:
    """One split of a prepared folder, memory-mapped."""
    meta = read_meta(folder, prepare_command)
    if split not in meta["splits"]:
        raise DataError(
            f"{folder} has no split {split!r} (it has {', '.join(meta['splits'])}); "
            "ask for one of those"
        )
    images = np.load(folder / f"{split}_images.npy", mmap_mode="r")
    labels = np.load(folder / f"{split}_labels.npy")
    if images.shape[1:] != (meta["resolution"], meta["resolution"], 3):
        raise DataError(
            f"{folder / f'{split}_images.npy'} holds {images.shape[1:]} images but "
            f"{META_FILE} says {meta['resolution']}x{meta['resolution']}; prepare it again"
        )
    beton = folder / f"{split}.beton"
    return ArraySource(
        name=name,
        num_classes=int(meta["num_classes"]),
        resolution=int(meta["resolution"]),
        labels=labels,
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        images=images,
        beton=beton if beton.exists() else None,
    )


def pretraining_source(dataset: str, split: str, resolution: int) -> ImageSource:
    """The pretraining set: "synthetic" (or "synthetic:pose_zipf=X", the embedded world with
    another pose tail) or the folder of a prepared ImageNet-21k.

    ``split`` is "train" or "heldout" (the held-out images for upstream error).
    """
    _check_split(split, PRETRAINING_SPLITS)
    if synthetic.is_synthetic(dataset):
        pose_zipf = synthetic.pose_zipf_of(dataset)
        return synthetic.pretraining_split(split, resolution, pose_zipf=pose_zipf)
    folder = Path(dataset)
    command = f"scalelab prepare imagenet21k SRC --out {dataset}"
    if not folder.exists():
        raise DataError(
            f"pretraining dataset {dataset!r} is neither 'synthetic' nor a prepared folder; "
            f"run `{command}`"
        )
    source = open_split(folder, split, folder.name, command)
    if source.resolution != resolution:
        raise DataError(
            f"{folder} was prepared at {source.resolution}x{source.resolution}, not "
            f"{resolution}x{resolution}; use resolution {source.resolution} or run "
            f"`scalelab prepare imagenet21k SRC --out DIR --resolution {resolution}`"
        )
    return source


def pretraining_info(dataset: str, resolution: int) -> tuple[int, int]:
    """(num_classes, num_examples) of a pretraining set's train split, without loading it."""
    source = pretraining_source(dataset, "train", resolution)
    return source.num_classes, len(source)


def downstream_source(
    target: str,
    split: str,
    resolution: int,
    data_root: Path | None = None,
    dataset: str = synthetic.DATASET,
) -> ImageSource:
    """A probe target's "train" or "test" split.

    Synthetic targets are rendered at ``resolution`` through the pose tail of the pretraining
    ``dataset`` when that is synthetic (the world's poses are shared by all its sets); real
    ones are read at their native resolution from ``data_root/<target>`` and resized by
    ``to_model_input``.
    """
    _check_split(split, DOWNSTREAM_SPLITS)
    if target in synthetic.DOWNSTREAM_CLASSES:
        synthetic_world = synthetic.is_synthetic(dataset)
        tail = synthetic.pose_zipf_of(dataset) if synthetic_world else synthetic.POSE_ZIPF
        return synthetic.downstream_split(target, split, resolution, pose_zipf=tail)
    if target not in REAL_TARGETS:
        close = difflib.get_close_matches(target, DATA_TARGETS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(DATA_TARGETS)}"
        raise DataError(f"unknown target {target!r}; {hint}")
    root = default_data_root(data_root)
    command = f"scalelab prepare {target} SRC --data-root {root}"
    if not (root / target).exists():
        raise DataError(f"target {target!r} is not prepared under {root}; run `{command}`")
    return open_split(root / target, split, target, command)


def check_labels(source: ImageSource, classes: int) -> None:
    """Raise a DataError unless ``source`` has ``classes`` classes, all labels in 0..classes-1.

    Checked before training because on CUDA an out-of-range label is no Python error:
    ``F.one_hot`` skips its range check there and the device assert breaks the CUDA context
    for every later job of the worker.
    """
    labels = np.asarray(source.labels)
    low, high = (int(labels.min()), int(labels.max())) if len(labels) else (0, 0)
    if source.num_classes != classes or low < 0 or high >= classes:
        raise DataError(
            f"{source.name} has {source.num_classes} classes (labels {low}..{high}) but the "
            f"grid's classes = {classes}; set classes = {source.num_classes} in the grid "
            "(or leave it out) and enqueue it again"
        )


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(allowed)}")
