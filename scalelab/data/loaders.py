"""Batches of (uint8 images, labels) on the device: FFCV's Loader, or an array loader.

``make_loader`` picks FFCV's Loader when ffcv is installed and the split has a ``.beton``
(ffcv decodes on its worker threads and copies uint8 to the device; augmentation happens
there, in scalelab.data.augment). Otherwise an array loader with the same interface reads
the memory-mapped array (or renders synthetic images) on a background thread. For the same
indices with ``shuffle=False`` both yield the same images and labels in the same order.

Each iteration over a loader is one epoch; with ``shuffle=True`` epoch e uses the order drawn
from (seed, e): ``np.random.default_rng(seed + e).permutation(indices)`` in both loaders (FFCV's
RANDOM order), so one loader serves a whole job and a resumed job sets ``loader.epoch`` to the
epoch it resumes. A .beton larger than about half the free memory is read with FFCV's
QUASI_RANDOM order and its own page cache instead (reads stay page-local), also a function of
(seed, e). Batches may reuse memory once the next batch is taken (FFCV recycles its buffers):
clone a batch to keep it.

``$SCALELAB_LOADER`` (auto, ffcv or array) decides every "auto" request: ``array`` reads the
memory-mapped arrays even where a .beton exists; ``ffcv`` insists on FFCV wherever one does.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalelab.data.sources import ImageSource
from scalelab.errors import DataError

# Subsets up to this many bytes are read into memory once; larger ones stream from the source.
IN_MEMORY_BYTES = 2 << 30
PREFETCH_BATCHES = 3
BACKENDS = ("auto", "ffcv", "array")
LOADER_ENV = "SCALELAB_LOADER"
# A .beton up to this fraction of the available memory is left to the OS page cache (it stays
# resident after the first epoch); a larger one would thrash it, so FFCV reads it page by page.
OS_CACHE_FRACTION = 0.5
KEPT_LOADERS = 8  # evaluation loaders kept per process: the splits of a few probe targets

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 (B, 3, H, W), int64 (B,)
_KEPT: dict[tuple, FfcvLoader] = {}  # see evaluation_loader
Crop = tuple[tuple[float, float], tuple[float, float]]  # random-resized crop (scale, ratio)


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
    crop: Crop | None = None,
) -> ArrayLoader | FfcvLoader:
    """A loader over ``source[indices]``; ``backend`` is "auto", "ffcv" or "array".

    ``crop`` is the training crop for a .beton that keeps aspect ratios (ImageNet-21k, as the
    authors'): FFCV's decoder takes it at load time and the loader's ``crops_done`` is True;
    without ``crop`` such a beton is centre-cropped (ratio 1). Square data is never cropped
    here (``crops_done`` False): augmentation crops it on the device.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise DataError(f"no examples to load from {source.name}; pass a non-empty subset")
    if drop_last and len(indices) < batch_size:
        raise DataError(
            f"{len(indices)} examples make no full batch of {batch_size}; "
            "lower the batch size or raise N"
        )
    if backend not in BACKENDS:
        raise DataError(f"unknown loader backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = _auto_backend(source)
    if backend == "ffcv":
        if source.beton is None:
            raise DataError(f"{source.name} has no .beton file; prepare it with ffcv installed")
        if not ffcv_available():
            raise DataError("the FFCV loader needs ffcv: pip install 'scalelab[ffcv]'")
        return FfcvLoader(source, indices, batch_size, device, shuffle, seed, drop_last, crop)
    return ArrayLoader(source, indices, batch_size, device, shuffle, seed, drop_last)


def evaluation_loader(
    source: ImageSource, indices: np.ndarray, batch_size: int, device: torch.device | str
) -> ArrayLoader | FfcvLoader:
    """``make_loader`` in source order, keeping FFCV loaders for the next call with the same key.

    A worker probes the same splits at every T of every job, and FFCV compiles each new
    loader's pipeline with numba on its first pass (seconds) and checks the .beton on every
    build. It allocates batch buffers per pass, so a kept loader holds no batch memory.
    """
    indices = np.asarray(indices, dtype=np.int64)
    key = (
        str(source.beton),
        source.beton.stat().st_mtime_ns if source.beton is not None else None,  # re-prepared?
        hashlib.sha1(indices.tobytes()).hexdigest(),
        batch_size,
        str(torch.device(device)),
        os.environ.get(LOADER_ENV),
    )
    if source.beton is not None and key in _KEPT:
        return _KEPT[key]
    loader = make_loader(
        source, indices, batch_size, device, shuffle=False, seed=0, drop_last=False
    )
    if isinstance(loader, FfcvLoader):
        if len(_KEPT) >= KEPT_LOADERS:
            del _KEPT[next(iter(_KEPT))]  # the oldest
        _KEPT[key] = loader
    return loader


def _auto_backend(source: ImageSource) -> str:
    """FFCV where the split has a .beton and ffcv is installed, unless $SCALELAB_LOADER says.

    $SCALELAB_LOADER=array always reads the arrays; =ffcv makes FFCV compulsory wherever a
    .beton exists (an error without ffcv), so a run can prove which loader it used.
    """
    forced = os.environ.get(LOADER_ENV, "auto").strip().lower() or "auto"
    if forced not in BACKENDS:
        raise DataError(
            f"{LOADER_ENV}={forced!r} is not a loader; use one of {', '.join(BACKENDS)}"
        )
    if source.beton is None or forced == "array":
        return "array"  # synthetic sources have nothing on disk for FFCV to read
    if forced == "ffcv" or ffcv_available():
        return "ffcv"
    return "array"


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable), the page cache included."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def ffcv_reading(beton_bytes: int, memory_bytes: int, shuffle: bool) -> tuple[str, bool]:
    """(FFCV order name, os_cache) for a .beton of ``beton_bytes`` with ``memory_bytes`` free.

    A stratified subset touches nearly every page of the file (a page holds hundreds of
    images), so the file's size, not the subset's, decides whether the page cache can hold it.
    """
    fits = beton_bytes <= OS_CACHE_FRACTION * memory_bytes
    if not shuffle:
        return "SEQUENTIAL", fits
    return ("RANDOM", True) if fits else ("QUASI_RANDOM", False)


def shuffled(positions: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The order of epoch ``epoch``: FFCV's RANDOM traversal, so both loaders agree."""
    return np.random.default_rng(seed + epoch).permutation(positions)


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

    crops_done = False  # square images, cropped (if at all) by the augmentation

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
        # Host-to-device copies get their own stream on CUDA; on a CPU batches stay put.
        on_cuda = self.device.type == "cuda"
        self._copies = torch.cuda.Stream(self.device) if on_cuda else None

    def __iter__(self) -> Iterator[Batch]:
        positions = np.arange(len(self.indices))
        if self.shuffle:
            positions = shuffled(positions, self.seed, self.epoch)
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
            if self._copies is None:
                while (item := ready.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                return
            # CUDA: the copy of batch k+1 is issued on the side stream before batch k is
            # handed over, so it overlaps batch k's step on the compute stream.
            pending = None
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                copied = self._copy(item)
                if pending is not None:
                    yield self._handed_over(*pending)
                pending = copied
            if pending is not None:
                yield self._handed_over(*pending)
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
        y = self.labels[positions]
        if self._copies is not None:  # pinned, so the copies are asynchronous
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def _copy(self, batch: Batch) -> tuple[Batch, torch.cuda.Event]:
        """Start copying a pinned batch to the GPU on the side stream; the event marks its end."""
        assert self._copies is not None
        with torch.cuda.stream(self._copies):
            moved = tuple(t.to(self.device, non_blocking=True) for t in batch)
            done = torch.cuda.Event()
            done.record(self._copies)
        return (moved[0], moved[1]), done

    def _handed_over(self, batch: Batch, done: torch.cuda.Event) -> Batch:
        """The batch, once the compute stream has been told to wait for its copy."""
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(done)
        for tensor in batch:
            # Memory made on the side stream but used on the compute stream: keep the caching
            # allocator from reusing it before the compute stream is done with it.
            tensor.record_stream(compute)
        return batch


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
        crop: Crop | None = None,
    ) -> None:
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.rgb_image import (
            CenterCropRGBImageDecoder,
            RandomResizedCropRGBImageDecoder,
            SimpleRGBImageDecoder,
        )
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

        super().__init__(indices, batch_size, shuffle, seed, drop_last)
        assert source.beton is not None
        square = check_beton(source.beton, source.resolution, len(source))
        device = torch.device(device)
        self.order, self.os_cache = ffcv_reading(
            source.beton.stat().st_size, available_memory(), shuffle
        )
        side = (source.resolution, source.resolution)
        # An aspect-kept beton is cropped as the authors' loader does: a random-resized crop
        # for training, a ratio-1 centre crop otherwise.
        if square:
            decoder = SimpleRGBImageDecoder()
        elif crop is not None:
            decoder = RandomResizedCropRGBImageDecoder(side, scale=crop[0], ratio=crop[1])
        else:
            decoder = CenterCropRGBImageDecoder(side, ratio=1)
        self.crops_done = not square and crop is not None
        self._loader = Loader(
            str(source.beton),
            batch_size=batch_size,
            num_workers=min(os.cpu_count() or 1, 8),
            order=getattr(OrderOption, self.order),
            os_cache=self.os_cache,
            seed=seed,
            indices=indices,
            drop_last=drop_last,
            pipelines={
                "image": [
                    decoder,
                    ToTensor(),
                    ToDevice(device, non_blocking=True),
                    ToTorchImage(),  # (B, 3, H, W) view of channels-last memory
                ],
                "label": [IntDecoder(), ToTensor(), Squeeze(1), ToDevice(device)],
            },
        )
        if self.order == "QUASI_RANDOM":
            self._loader.traversal_order = _quasi_random_by_epoch(self._loader)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[Batch]:
        self._loader.next_epoch = self.epoch  # FFCV draws epoch e's order from (seed, e)
        self.epoch += 1
        # FFCV allocates the epoch's buffers here, on this thread, and fills them on its own.
        # Under a caller's inference mode they would be inference tensors, which FFCV's threads
        # may not write: the copy fails there, FFCV swallows the error and the epoch hangs.
        with torch.inference_mode(False):
            batches = iter(self._loader)
        for images, labels in batches:
            yield images, labels.long()


def _quasi_random_by_epoch(loader: Any) -> Any:
    """FFCV's QUASI_RANDOM traversal, made a function of (seed, epoch) alone.

    FFCV shuffles its page table in place at every draw, so its epoch e depends on every order
    drawn before; a loader built to resume a job at epoch e would take another order. Each
    draw here shuffles a copy of the table instead.
    """
    from ffcv.traversal_order.quasi_random import QuasiRandom

    class QuasiRandomByEpoch(QuasiRandom):
        def sample_order(self, epoch: int) -> np.ndarray:
            table = self.page_to_samples_array
            self.page_to_samples_array = table.copy()
            try:
                return super().sample_order(epoch)
            finally:
                self.page_to_samples_array = table

    return QuasiRandomByEpoch(loader)


def check_beton(path: Path, resolution: int, count: int) -> bool:
    """True for a .beton of square images at ``resolution``, False for one that keeps aspect
    ratios with no side above it; a DataError for another resolution or number of images."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    image = reader.metadata[f"f{reader.field_names.index('image')}"]  # fields are f0, f1, ...
    if len(image) != count:
        raise DataError(
            f"{path} holds {len(image)} images but its split has {count}; prepare it again"
        )
    heights, widths = image["height"], image["width"]
    if (heights == resolution).all() and (widths == resolution).all():
        return True
    longest = int(max(heights.max(), widths.max()))
    if longest != resolution:
        height, width = int(heights[0]), int(widths[0])
        raise DataError(
            f"{path} was written at {height}x{width} but the dataset is "
            f"{resolution}x{resolution}; prepare it again"
        )
    return False
