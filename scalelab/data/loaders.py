"""Batches of (uint8 images, labels) on the device: FFCV's Loader, or an array loader.

``make_loader`` picks FFCV's Loader when ffcv is installed and the split has a ``.beton``
(ffcv decodes on its worker threads and copies uint8 to the device; augmentation happens
there, in scalelab.data.augment). Otherwise an array loader with the same interface reads
the memory-mapped array (or renders synthetic images) on a background thread. For the same
indices with ``shuffle=False`` both yield the same images and labels in the same order.

Each iteration over a loader is one epoch; with ``shuffle=True`` epoch e uses the order drawn
from (seed, e). Batches may reuse memory once the next batch is taken (FFCV recycles its
buffers): clone a batch to keep it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from scalelab.data.sources import ImageSource
from scalelab.errors import DataError

# Subsets up to this many bytes are read into memory once; larger ones stream from the source.
IN_MEMORY_BYTES = 2 << 30
PREFETCH_BATCHES = 3

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 (B, 3, H, W), int64 (B,)


def ffcv_available() -> bool:
    try:
        import ffcv.loader  # noqa: F401
    except ImportError:
        return False
    return True


def make_loader(
    source: ImageSource,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device | str,
    *,
    shuffle: bool,
    seed: int,
    drop_last: bool,
    backend: str = "auto",
) -> ArrayLoader | FfcvLoader:
    """A loader over ``source[indices]``; ``backend`` is "auto", "ffcv" or "array"."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise DataError(f"no examples to load from {source.name}; pass a non-empty subset")
    if drop_last and len(indices) < batch_size:
        raise DataError(
            f"{len(indices)} examples make no full batch of {batch_size}; "
            "lower the batch size or raise N"
        )
    use_ffcv = backend == "ffcv" or (
        backend == "auto" and source.beton is not None and ffcv_available()
    )
    if use_ffcv:
        if source.beton is None:
            raise DataError(f"{source.name} has no .beton file; prepare it with ffcv installed")
        return FfcvLoader(source, indices, batch_size, device, shuffle, seed, drop_last)
    return ArrayLoader(source, indices, batch_size, device, shuffle, seed, drop_last)


class _EpochOrder:
    """Batch size, length and per-epoch orders shared by both loaders."""

    def __init__(
        self, indices: np.ndarray, batch_size: int, shuffle: bool, seed: int, drop_last: bool
    ) -> None:
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.indices), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1


class ArrayLoader(_EpochOrder):
    """Reads ``source.take`` batches on a background thread and moves them to the device."""

    def __init__(
        self,
        source: ImageSource,
        indices: np.ndarray,
        batch_size: int,
        device: torch.device | str,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ) -> None:
        super().__init__(indices, batch_size, shuffle, seed, drop_last)
        self.device = torch.device(device)
        self.labels = torch.from_numpy(np.asarray(source.labels)[indices])
        image_bytes = len(indices) * source.resolution**2 * 3
        # Small subsets are read (or rendered) once; positions then index this copy.
        self._images = source.take(indices) if image_bytes <= IN_MEMORY_BYTES else None
        self._source = source

    def __iter__(self) -> Iterator[Batch]:
        positions = np.arange(len(self.indices))
        if self.shuffle:
            positions = np.random.default_rng([self.seed, self.epoch]).permutation(positions)
        self.epoch += 1
        batches = [
            positions[start : start + self.batch_size]
            for start in range(0, len(positions), self.batch_size)
        ][: len(self)]
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in batches:
                    if stop.is_set():
                        return
                    ready.put(self._read(batch))
                ready.put(None)
            except BaseException as exc:  # handed to the consumer, raised there
                ready.put(exc)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                images, labels = item
                yield (
                    images.to(self.device, non_blocking=True),
                    labels.to(self.device, non_blocking=True),
                )
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.01)

    def _read(self, positions: np.ndarray) -> Batch:
        if self._images is not None:
            images = self._images[positions]
        else:
            images = self._source.take(self.indices[positions])
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (B, 3, H, W)
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x, self.labels[positions]


class FfcvLoader(_EpochOrder):
    """FFCV's Loader over a split's ``.beton``, yielding the same batches as ArrayLoader."""

    def __init__(
        self,
        source: ImageSource,
        indices: np.ndarray,
        batch_size: int,
        device: torch.device | str,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ) -> None:
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.rgb_image import SimpleRGBImageDecoder
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

        super().__init__(indices, batch_size, shuffle, seed, drop_last)
        assert source.beton is not None
        check_beton(source.beton, source.resolution, len(source))
        device = torch.device(device)
        self._loader = Loader(
            str(source.beton),
            batch_size=batch_size,
            num_workers=min(os.cpu_count() or 1, 8),
            order=OrderOption.RANDOM if shuffle else OrderOption.SEQUENTIAL,
            seed=seed,
            indices=indices,
            drop_last=drop_last,
            pipelines={
                "image": [
                    SimpleRGBImageDecoder(),
                    ToTensor(),
                    ToDevice(device, non_blocking=True),
                    ToTorchImage(),  # (B, 3, H, W) view of channels-last memory
                ],
                "label": [IntDecoder(), ToTensor(), Squeeze(1), ToDevice(device)],
            },
        )

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[Batch]:
        self.epoch += 1
        for images, labels in self._loader:
            yield images, labels.long()


def check_beton(path: Path, resolution: int, count: int) -> None:
    """Raise a DataError if a .beton holds another resolution or number of images."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    image = reader.metadata[f"f{reader.field_names.index('image')}"]  # fields are f0, f1, ...
    if len(image) != count:
        raise DataError(
            f"{path} holds {len(image)} images but its split has {count}; prepare it again"
        )
    height, width = int(image["height"][0]), int(image["width"][0])
    if (height, width) != (resolution, resolution):
        raise DataError(
            f"{path} was written at {height}x{width} but the dataset is "
            f"{resolution}x{resolution}; prepare it again"
        )
