"""`scalelab prepare`: raw downloads -> prepared folders (memmap .npy, .beton, meta.json).

JPEG sets are decoded in shards of SHARD_SIZE files by a pool of processes. Each shard is
written to ``OUT/.partial/`` under a temporary name and renamed when complete, so an
interrupted run resumes by skipping the shards that exist. The final arrays are assembled in
``.partial`` and moved into place; ``meta.json`` is written last and only then is the
folder a dataset (sources refuse a folder without it). Unreadable images are skipped,
non-RGB ones converted; both are counted and reported at the end, never fatal mid-way.

ImageNet-21k's ``.beton`` stores what the authors' does (their dataset_to_beton.py,
``RGBImageField(max_resolution=64)``): each image with its aspect ratio kept, the longer side
resized to the resolution, so that crops are taken when images are loaded. The memory-mapped
fallback stores square centre crops (docs/DEVIATIONS.md).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scalelab.data import readers
from scalelab.data.sources import (
    CLASSES_FILE,
    FORMAT,
    IMAGENET21K_STATS,
    META_FILE,
    PARTIAL_DIR,
    REAL_TARGETS,
    default_data_root,
)
from scalelab.data.subsets import stratified_subset
from scalelab.errors import DataError

SHARD_SIZE = 1024
BETON_ASPECT = "aspect ratio kept, longer side {r} pixels (FFCV RGBImageField(max_resolution={r}))"
SKIPPED_LISTED = 100  # skipped files named in meta.json; the count is always exact
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class PrepareReport:
    name: str
    out: Path
    resolution: int
    num_classes: int
    counts: dict[str, int]
    converted: int = 0
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)
    beton: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        counts = ", ".join(f"{split} {n:,}" for split, n in self.counts.items())
        line = (
            f"prepared {self.name}: {counts} images of {self.resolution}x{self.resolution}, "
            f"{self.num_classes:,} classes -> {self.out} "
            f"({'memmap + .beton' if self.beton else 'memmap'}, {self.seconds:.1f}s)"
        )
        if self.converted:
            line += f"; converted {self.converted:,} non-RGB images"
        if self.skipped:
            line += f"; skipped {self.skipped:,} unreadable images (listed in {META_FILE})"
        return line

    def to_json(self) -> dict:
        return {**asdict(self), "out": str(self.out)}


def prepare_imagenet21k(
    src: Path,
    out: Path,
    *,
    resolution: int = 64,
    heldout_fraction: float = 0.01,
    seed: int = 0,
    workers: int | None = None,
    progress: Progress | None = None,
) -> PrepareReport:
    """A folder of class folders of JPEGs -> train and held-out splits at ``resolution``.

    The held-out split (for upstream error) is a class-stratified ``heldout_fraction`` of
    the images, drawn with ``seed`` before decoding.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise DataError(f"--heldout-fraction must be in (0, 1), not {heldout_fraction}")
    started = time.perf_counter()
    out = Path(out)
    _check_not_prepared(out)
    listing, classes = readers.list_class_folders(Path(src))
    n_heldout = max(1, round(heldout_fraction * len(listing.paths)))
    if n_heldout >= len(listing.paths):
        raise DataError(
            f"{src} has {len(listing.paths)} images, too few to hold out {n_heldout}; "
            "add images or lower --heldout-fraction"
        )
    heldout = np.zeros(len(listing.paths), dtype=bool)
    heldout[stratified_subset(listing.labels, n_heldout, seed)] = True
    splits = {
        "train": _select(listing, ~heldout),
        "heldout": _select(listing, heldout),
    }
    report = _prepare_files(
        "imagenet21k",
        splits,
        classes,
        out,
        resolution,
        IMAGENET21K_STATS,
        workers,
        progress,
        extra={"heldout_fraction": heldout_fraction, "heldout_seed": seed, "source": str(src)},
        aspect_beton=True,
    )
    report.seconds = time.perf_counter() - started
    return report


def prepare_target(
    target: str,
    src: Path,
    data_root: Path | None = None,
    *,
    resolution: int = 64,
    workers: int | None = None,
    progress: Progress | None = None,
) -> PrepareReport:
    """A downstream set from its official layout -> ``data_root/<target>``.

    CIFAR, STL10 and TinyImageNet keep their native resolution; ImageNet-1k is resized to
    ``resolution`` (the paper's 64) since its photographs have no common size.
    """
    if target not in REAL_TARGETS:
        raise DataError(f"cannot prepare {target!r}; preparable: {', '.join(REAL_TARGETS)}")
    started = time.perf_counter()
    src, out = Path(src), default_data_root(data_root) / target
    _check_not_prepared(out)
    stats = REAL_TARGETS[target]
    extra = {"source": str(src)}
    if target in ("cifar10", "cifar100", "stl10"):
        reader = {
            "cifar10": readers.read_cifar10,
            "cifar100": readers.read_cifar100,
            "stl10": readers.read_stl10,
        }[target]
        arrays, classes = reader(src)
        report = write_prepared(out, target, arrays, classes, stats, extra, workers)
    else:
        if target == "tinyimagenet":
            splits, classes = readers.list_tinyimagenet(src)
            size: int | None = None  # already 64x64
        else:
            splits, classes = readers.list_imagenet1k(src)
            size = resolution
        report = _prepare_files(
            target,
            splits,
            classes,
            out,
            size or 64,
            stats,
            workers,
            progress,
            extra,
            resize=size is not None,
        )
    report.seconds = time.perf_counter() - started
    return report


def write_prepared(
    out: Path,
    name: str,
    splits: dict[str, readers.ArraySplit],
    classes: list[str],
    stats: dict,
    extra: dict | None = None,
    workers: int | None = None,
) -> PrepareReport:
    """Write in-memory splits (N, H, W, 3) uint8 as a prepared folder at native resolution."""
    out = Path(out)
    _check_not_prepared(out)
    staging = _staging(out)
    for split, data in splits.items():
        np.save(staging / f"{split}_images.npy", data.images)
        np.save(staging / f"{split}_labels.npy", data.labels)
    counts = {split: len(data.labels) for split, data in splits.items()}
    native = next(iter(splits.values())).images.shape[1]
    report = PrepareReport(name, out, native, len(classes), counts)
    _finish(report, classes, stats, workers, {**(extra or {}), "resize": "none (native)"})
    return report


def _select(listing: readers.FileSplit, mask: np.ndarray) -> readers.FileSplit:
    return readers.FileSplit(
        [p for p, keep in zip(listing.paths, mask, strict=True) if keep], listing.labels[mask]
    )


def _check_not_prepared(out: Path) -> None:
    if (out / META_FILE).exists():
        raise DataError(f"{out} is already prepared; delete it first to prepare it again")


def _staging(out: Path) -> Path:
    staging = out / PARTIAL_DIR
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def _prepare_files(
    name: str,
    splits: dict[str, readers.FileSplit],
    classes: list[str],
    out: Path,
    resolution: int,
    stats: dict,
    workers: int | None,
    progress: Progress | None,
    extra: dict,
    resize: bool = True,
    aspect_beton: bool = False,
) -> PrepareReport:
    """Decode the files of every split; ``aspect_beton`` writes the .beton from the files,
    aspect ratio kept, instead of from the decoded squares."""
    staging = _staging(out)
    report = PrepareReport(name, out, resolution, len(classes), counts={})
    for split, listing in splits.items():
        kept = _decode_split(
            split, listing, resolution if resize else None, staging, workers, progress, report
        )
        report.counts[split] = kept
    policy = readers.RESIZE_POLICY.format(r=resolution) if resize else "none (native)"
    extra = {**extra, "resize": policy}
    if aspect_beton:
        extra["beton_layout"] = BETON_ASPECT.format(r=resolution)
    _finish(report, classes, stats, workers, extra, aspect_beton)
    return report


def _decode_split(
    split: str,
    listing: readers.FileSplit,
    resolution: int | None,
    staging: Path,
    workers: int | None,
    progress: Progress | None,
    report: PrepareReport,
) -> int:
    """Decode one split's files into ``staging/<split>_images.npy``; returns images kept."""
    shards = [
        (
            staging / f"{split}-shard-{i:06d}.npz",
            listing.paths[start : start + SHARD_SIZE],
            listing.labels[start : start + SHARD_SIZE],
            resolution,
        )
        for i, start in enumerate(range(0, len(listing.paths), SHARD_SIZE))
    ]
    todo = [shard for shard in shards if not shard[0].exists()]  # resume: skip finished
    done = sum(len(shard[1]) for shard in shards if shard[0].exists())
    total = len(listing.paths)
    if progress:
        progress(split, done, total)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(todo) <= 1:
        results = map(_decode_shard, todo)
        pool = None
    else:
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        pool = context.Pool(min(workers, len(todo)))
        results = pool.imap_unordered(_decode_shard, todo)
    try:
        for count in results:
            done += count
            if progress:
                progress(split, done, total)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()

    kept = 0
    for path, *_ in shards:
        with np.load(path) as shard:
            kept += len(shard["labels"])
    if kept == 0:
        raise DataError(f"no readable images in the {split} split; check the source folder")
    images_path = staging / f"{split}_images.npy"
    images = np.lib.format.open_memmap(
        staging / f"{split}_images.tmp.npy",
        mode="w+",
        dtype=np.uint8,
        shape=(kept, *(2 * [resolution or _native_size(shards)]), 3),
    )
    report.resolution = int(images.shape[1])
    labels = np.empty(kept, dtype=np.int64)
    position = 0
    for path, *_ in shards:
        with np.load(path) as shard:
            n = len(shard["labels"])
            if n and shard["images"].shape[1:] != images.shape[1:]:
                raise DataError(
                    f"{split} images have different sizes ({shard['images'].shape[1:3]} and "
                    f"{images.shape[1:3]}); prepare with a resize"
                )
            images[position : position + n] = shard["images"]
            labels[position : position + n] = shard["labels"]
            position += n
            report.converted += int(shard["converted"])
            skipped = [str(p) for p in shard["skipped"]]
            report.skipped += len(skipped)
            room = SKIPPED_LISTED - len(report.skipped_files)
            report.skipped_files += skipped[: max(room, 0)]
    images.flush()
    del images
    os.replace(staging / f"{split}_images.tmp.npy", images_path)
    np.save(staging / f"{split}_labels.npy", labels)
    return kept


def _native_size(shards: list) -> int:
    for path, *_ in shards:
        with np.load(path) as shard:
            if len(shard["labels"]):
                return int(shard["images"].shape[1])
    raise DataError("no readable images; check the source folder")


def _decode_shard(task: tuple[Path, list[Path], np.ndarray, int | None]) -> int:
    """Decode one shard of files and write it atomically; returns the files it covered."""
    path, paths, labels, resolution = task
    images, kept_labels, skipped, kept = [], [], [], []
    converted = 0
    for file, label in zip(paths, labels, strict=True):
        pixels, status = readers.decode_image(file, resolution)
        if pixels is None or (images and pixels.shape != images[0].shape):
            skipped.append(str(file))
            continue
        converted += status == "converted"
        images.append(pixels)
        kept_labels.append(label)
        kept.append(str(file))
    side = images[0].shape[0] if images else (resolution or 1)
    array = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
    partial = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(
        partial,
        images=array,
        labels=np.asarray(kept_labels, dtype=np.int64),
        converted=converted,
        skipped=np.asarray(skipped, dtype=str),
        kept=np.asarray(kept, dtype=str),  # the files behind `images`, for an aspect .beton
    )
    os.replace(partial, path)
    return len(paths)


def _finish(
    report: PrepareReport,
    classes: list[str],
    stats: dict,
    workers: int | None,
    extra: dict,
    aspect_beton: bool = False,
) -> None:
    """Write .beton files (with ffcv), move everything into place, then meta.json last."""
    from scalelab.data.loaders import ffcv_available

    staging = report.out / PARTIAL_DIR
    report.beton = ffcv_available()
    for split in report.counts:
        if report.beton and aspect_beton:
            _write_aspect_beton(staging, split, report.resolution, workers)
        elif report.beton:
            _write_beton(staging, split, workers)
    (staging / CLASSES_FILE).write_text(json.dumps(classes))
    for split in report.counts:
        for suffix in ("_images.npy", "_labels.npy", ".beton"):
            part = staging / f"{split}{suffix}"
            if part.exists():
                os.replace(part, report.out / part.name)
    os.replace(staging / CLASSES_FILE, report.out / CLASSES_FILE)
    meta = {
        "format": FORMAT,
        "name": report.name,
        "resolution": report.resolution,
        "num_classes": report.num_classes,
        "splits": report.counts,
        "mean": list(stats["mean"]),
        "std": list(stats["std"]),
        "beton": report.beton,
        "converted": report.converted,
        "skipped": report.skipped,
        "skipped_files": report.skipped_files,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
    tmp = report.out / f"{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, report.out / META_FILE)
    shutil.rmtree(staging)


class _ArrayDataset:
    """What ffcv's DatasetWriter reads: (HWC uint8 image, int label) by index."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.ascontiguousarray(self.images[i]), int(self.labels[i])


class _FileDataset:
    """What ffcv's DatasetWriter reads: (native HWC uint8 image, int label) from the files."""

    def __init__(self, paths: list[str], labels: np.ndarray) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        pixels, _ = readers.decode_image(Path(self.paths[i]), None)
        if pixels is None:  # it decoded when its shard was written
            raise DataError(f"{self.paths[i]} became unreadable during preparation; run again")
        return pixels, int(self.labels[i])


def _write_aspect_beton(staging: Path, split: str, resolution: int, workers: int | None) -> None:
    """The split's .beton from its kept files, aspect ratio kept, longer side ``resolution``."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    paths: list[str] = []
    for shard in sorted(staging.glob(f"{split}-shard-*.npz")):
        with np.load(shard) as data:
            paths += [str(p) for p in data["kept"]]
    labels = np.load(staging / f"{split}_labels.npy")
    partial = staging / f"{split}.tmp.beton"
    writer = DatasetWriter(
        str(partial),
        # The authors' field ("smart" with no threshold stores raw pixels, as "raw" does).
        {"image": RGBImageField(write_mode="raw", max_resolution=resolution), "label": IntField()},
        num_workers=max(1, min(workers or os.cpu_count() or 1, 16)),
    )
    writer.from_indexed_dataset(_FileDataset(paths, labels), chunksize=256)
    os.replace(partial, staging / f"{split}.beton")


def _write_beton(staging: Path, split: str, workers: int | None) -> None:
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    images = np.load(staging / f"{split}_images.npy", mmap_mode="r")
    labels = np.load(staging / f"{split}_labels.npy")
    partial = staging / f"{split}.tmp.beton"
    writer = DatasetWriter(
        str(partial),
        {"image": RGBImageField(write_mode="raw"), "label": IntField()},
        num_workers=max(1, min(workers or os.cpu_count() or 1, 16)),
    )
    writer.from_indexed_dataset(_ArrayDataset(images, labels), chunksize=256)
    os.replace(partial, staging / f"{split}.beton")
