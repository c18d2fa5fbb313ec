"""Loader benchmark: images/s at 64x64 with flips, random-resized crops and MixUp.

Measured in one run, on the same 64x64 images (synthetic, written once as a prepared folder):
- FFCV: ffcv's Loader over the .beton (uint8 to the device), then TrainAugment on the batch;
- memmap: scalelab's array loader streaming from the memory-mapped .npy, then TrainAugment;
- baseline: a plain torch DataLoader over decoded images with per-sample transforms (crop,
  resize, flip, normalise per image, as torchvision-style pipelines do) and MixUp on the batch;
- consumption: what training B-6/Wi-1024 (11,230-class head) takes, a forward + backward +
  LION step at batch 256, in images/s.
Each loader is reported in images/s and as a multiple of the consumption (target >= 3x: the
loader is never the bottleneck). Medians over repeats.

Usage: python benchmarks/bench_loader.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import machine, write_section

from scalelab.data import TrainAugment, pretraining_source
from scalelab.data.loaders import ffcv_available, make_loader
from scalelab.data.prepare import write_prepared
from scalelab.data.readers import ArraySplit
from scalelab.data.sources import IMAGENET21K_STATS, open_split

RESOLUTION = 64
BATCH = 256
CLASSES = 11_230


def prepared_folder(root: Path, n: int) -> Path:
    source = pretraining_source("synthetic", "train", RESOLUTION)
    indices = np.arange(n)
    split = ArraySplit(source.take(indices), source.labels[indices] % 1000)
    write_prepared(
        root / "bench", "bench", {"train": split}, [str(c) for c in range(1000)], IMAGENET21K_STATS
    )
    return root / "bench"


def loader_rate(
    loader, augment: TrainAugment, batches: int, repeats: int, device: torch.device | str = "cpu"
) -> float:
    """Median images/s over ``repeats`` passes of ``batches`` batches, augmentation included
    (on ``device``, the loader's: its generator draws crops, flips and MixUp pairs there)."""
    generator = torch.Generator(device).manual_seed(0)
    host = torch.Generator().manual_seed(1)  # MixUp weights
    on_cuda = torch.device(device).type == "cuda"
    rates = []
    for repeat in range(repeats + 1):  # the first pass warms up (numba compile, page cache)
        start, seen = time.perf_counter(), 0
        for step, (x, y) in enumerate(loader):
            images, targets = augment(x, y, generator, host)
            seen += len(images)
            if step + 1 == batches:
                break
        if on_cuda:
            torch.cuda.synchronize(device)  # the batches' kernels are done, not just queued
        if repeat:
            rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


class PerSampleDataset(torch.utils.data.Dataset):
    """Decoded images with per-image transforms: the usual torchvision-style pipeline."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1).float() / 255
        area = np.random.uniform(0.35, 1.0)
        ratio = np.exp(np.random.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = min(RESOLUTION, int(round(RESOLUTION * np.sqrt(area * ratio))))
        h = min(RESOLUTION, int(round(RESOLUTION * np.sqrt(area / ratio))))
        top = np.random.randint(0, RESOLUTION - h + 1)
        left = np.random.randint(0, RESOLUTION - w + 1)
        crop = image[:, top : top + h, left : left + w][None]
        image = F.interpolate(crop, size=(RESOLUTION, RESOLUTION), mode="bilinear")[0]
        if np.random.rand() < 0.5:
            image = image.flip(2)
        return (image - self.mean) / self.std, int(self.labels[i])


def baseline_rate(source, batches: int, repeats: int, workers: int) -> float:
    dataset = PerSampleDataset(source.images, source.labels, source.mean, source.std)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    rates = []
    for repeat in range(repeats + 1):
        start, seen = time.perf_counter(), 0
        for step, (x, y) in enumerate(loader):
            lam = float(np.random.beta(0.8, 0.8))
            perm = torch.randperm(len(x))
            x = lam * x + (1 - lam) * x[perm]
            targets = F.one_hot(y, 1000).float() * 0.7 + 0.3 / 1000
            targets = lam * targets + (1 - lam) * targets[perm]
            seen += len(x)
            if step + 1 == batches:
                break
        if repeat:
            rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


def consumption_rate(steps: int) -> float:
    from scalelab.models import build_model
    from scalelab.train.lion import Lion

    model = build_model("B-6/Wi-1024", CLASSES, RESOLUTION)
    optimizer = Lion(model.parameters(), lr=1e-5, weight_decay=1e-3)
    x = torch.randn(BATCH, 3, RESOLUTION, RESOLUTION)
    y = torch.randint(0, CLASSES, (BATCH,))
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x)[0], y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    args = parser.parse_args()
    n, batches, repeats, steps = (4096, 8, 2, 2) if args.quick else (16384, 32, 3, 5)
    workers = min(os.cpu_count() or 1, 8)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepared_folder(Path(tmp), n)
        source = open_split(folder, "train", "bench", "scalelab prepare ...")
        augment = TrainAugment(1000, source.mean, source.std, RESOLUTION)
        indices = np.arange(n)
        rows = []
        if ffcv_available():
            ffcv = make_loader(
                source, indices, BATCH, "cpu", shuffle=True, seed=0, drop_last=True, backend="ffcv"
            )
            rows.append(
                (
                    "FFCV Loader (.beton) + TrainAugment",
                    loader_rate(ffcv, augment, batches, repeats),
                )
            )
        import scalelab.data.loaders as loaders

        loaders.IN_MEMORY_BYTES = 0  # stream from the memmap, as for a dataset beyond RAM
        memmap = make_loader(
            source, indices, BATCH, "cpu", shuffle=True, seed=0, drop_last=True, backend="array"
        )
        rows.append(
            ("memmap array loader + TrainAugment", loader_rate(memmap, augment, batches, repeats))
        )
        rows.append(
            (
                f"baseline: torch DataLoader, per-sample transforms ({workers} workers)",
                baseline_rate(source, batches, repeats, workers),
            )
        )
    consumption = consumption_rate(steps)
    load_after = os.getloadavg()[0]

    table = "\n".join(
        f"| {name} | {rate:,.0f} | {rate / consumption:.1f}× |" for name, rate in rows
    )
    markdown = f"""## Loader throughput at 64×64 (flips, random-resized crops, MixUp)

Machine: {machine()}; load average {load_before:.1f} before, {load_after:.1f} after the run.
{n:,} synthetic 64×64 images written once as a prepared folder (uint8 memmap + FFCV .beton),
batch {BATCH}, augmentation on the batch's device (CPU here); medians over {repeats} passes of
{batches} batches after a warm-up. Consumption: B-6/Wi-1024 with the 11,230-class head,
forward + backward + LION step at batch {BATCH}: **{consumption:,.0f} images/s** (median of
{steps} steps).

| loader | images/s | × consumption |
|---|---|---|
{table}

Target: every scalelab loader ≥ 3× the consumption (the loader is never the bottleneck).
"""
    write_section("loader", markdown)


if __name__ == "__main__":
    main()
