"""Frozen features of an encoder on a downstream target, and the probe on them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scalelab.data import TrainAugment, downstream_source, make_loader, to_model_input
from scalelab.data.augment import CROP_SCALE
from scalelab.data.loaders import ArrayLoader, FfcvLoader, evaluation_loader
from scalelab.data.sources import ImageSource
from scalelab.errors import ProbeError
from scalelab.probe.gradient import EpochBatches
from scalelab.probe.run import ProbeResult, resolve_settings, run_probe

# The crops of the authors' probe: finetune.py hands its training loader the parser defaults
# --crop_scale [0.08, 1] and --crop_ratio [0.08, 1] (this ratio range, unlike pretraining's
# (3/4, 4/3), looks copied from the scale's, but it is what their probe runs), plus flips.
PROBE_CROP_RATIO = (0.08, 1.0)


def _default_batch_size(device: torch.device) -> int:
    # Without autograd only one block's activations live at a time: for B-12/Wi-1024 at
    # 64x64 about 50 MB of input and 16 MB of expansion per 1,024 images, so a GPU takes
    # large batches (and _prelogits halves them if not); on a CPU larger ones gain nothing.
    return 4096 if device.type == "cuda" else 512


def _prelogits(model: nn.Module, x: Tensor) -> Tensor:
    """The model's pre-logits (B, D) for x (B, 3, R, R), halving the batch when the GPU is full."""
    try:
        return model(x)[1]
    except torch.cuda.OutOfMemoryError:
        if x.shape[0] == 1:
            raise
    # Retried here, after the except block: inside it the traceback still holds the failed
    # forward pass's frames, and with them its activations, so empty_cache could free nothing.
    torch.cuda.empty_cache()
    half = x.shape[0] // 2
    return torch.cat([_prelogits(model, x[:half]), _prelogits(model, x[half:])])


def extract_features(
    model: nn.Module,
    source: ImageSource,
    *,
    resolution: int,
    device: str | torch.device,
    batch_size: int | None = None,
    indices: np.ndarray | None = None,
    alive: Callable[[], None] = lambda: None,
) -> tuple[Tensor, Tensor]:
    """(features float32 (n, D), labels int64 (n,)) of every example of `source`, on `device`.

    Eval mode, no augmentation (for a square image this is the authors' ratio-1 centre crop),
    the source's own mean/std, upscaled to the model's
    `resolution`. The model's train/eval mode is restored afterwards, so a worker can probe
    mid-training. `alive` is called after every batch: a worker's watchdog counts that as
    progress, so a long extraction is never taken for a stall.
    """
    device = torch.device(device)
    indices = np.arange(len(source)) if indices is None else indices
    loader = evaluation_loader(source, indices, batch_size or _default_batch_size(device), device)
    features, labels = [], []
    was_training = model.training
    model.eval()
    try:
        # no_grad rather than inference_mode: the lion and logreg probes backpropagate
        # through products with these tensors, which inference tensors forbid.
        with torch.no_grad():
            for x, y in loader:
                inputs = to_model_input(x, source.mean, source.std, resolution)  # (B, 3, R, R)
                features.append(_prelogits(model, inputs).float())  # (B, D)
                labels.append(y)
                alive()
    finally:
        model.train(was_training)
    return torch.cat(features), torch.cat(labels).to(torch.int64)


def augmented_epochs(
    model: nn.Module,
    source: ImageSource,
    *,
    resolution: int,
    device: str | torch.device,
    batch_size: int,
    seed: int,
    indices: np.ndarray | None = None,
    alive: Callable[[], None] = lambda: None,
) -> EpochBatches:
    """Each call: one pass over `source` in a new order, pre-logits of augmented images.

    The training side of the authors' probe: their loader's random-resized crops and flips
    (no MixUp), the last partial batch dropped; the model stays frozen in eval mode.
    `alive` is called after every batch, as in `extract_features`.
    """
    device = torch.device(device)
    indices = np.arange(len(source)) if indices is None else indices
    loaders: list[ArrayLoader | FfcvLoader] = []  # made at the first epoch, after fit_lion's checks
    augment = TrainAugment(
        source.num_classes,
        source.mean,
        source.std,
        resolution,
        crop_scale=CROP_SCALE,
        crop_ratio=PROBE_CROP_RATIO,
        mixup=0.0,
        label_smoothing=0.0,
    )
    generator = torch.Generator(device).manual_seed(seed)

    def epoch() -> Iterator[tuple[Tensor, Tensor]]:
        if not loaders:
            loaders.append(
                make_loader(
                    source, indices, batch_size, device, shuffle=True, seed=seed, drop_last=True
                )
            )
        was_training = model.training
        model.eval()
        try:
            for x, y in loaders[0]:
                # no_grad only around the forward pass: a `with` spanning the yield would
                # switch gradients off in the caller's training step too.
                with torch.no_grad():
                    images = augment.images(x, generator)  # (B, 3, R, R)
                    features = _prelogits(model, images).float()  # (B, D)
                alive()
                yield features, y.to(torch.int64)
        finally:
            model.train(was_training)

    return epoch


def probe_encoder(
    model: nn.Module,
    target: str,
    *,
    method: str,
    resolution: int,
    device: str | torch.device,
    data_root: Path | None = None,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    alive: Callable[[], None] = lambda: None,
    dataset: str = "synthetic",
) -> ProbeResult:
    """Probe `model`'s pre-logits on `target`: train on its train split, error on its test split.

    wall_seconds covers extraction and fit; details split them (extract_seconds). `alive` is
    called after every batch through the encoder (a worker's watchdog counts it as progress).
    `dataset` is the encoder's pretraining set: a synthetic target shares its pose tail.

    Example: probe_encoder(model, "synthetic-cifar10", method="ridge", resolution=64, device="cpu")
    """
    start = time.perf_counter()
    settings = dict(settings or {})
    sizes = {split: settings.pop(f"{split}_examples", None) for split in ("train", "test")}
    features, sources = {}, {}
    for split, n in sizes.items():
        source = sources[split] = downstream_source(target, split, resolution, data_root, dataset)
        features[split] = extract_features(
            model,
            source,
            resolution=resolution,
            device=device,
            indices=_subset(source, n, f"{split}_examples"),
            alive=alive,
        )
        num_classes = source.num_classes
    extract_seconds = time.perf_counter() - start
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    augmented = None
    options = resolve_settings(method, settings)
    if options.get("augment"):  # the lion probe: fresh augmented training images every epoch
        augmented = augmented_epochs(
            model,
            sources["train"],
            resolution=resolution,
            device=device,
            batch_size=options["batch_size"],
            seed=seed,
            indices=_subset(sources["train"], sizes["train"], "train_examples"),
            alive=alive,
        )
    result = run_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes,
        method,
        settings=settings,
        seed=seed,
        augmented=augmented,
    )
    details = {
        **result.details,
        "target": target,
        "extract_seconds": extract_seconds,
        "train_examples": len(train_y),
        "test_examples": len(test_y),
    }
    return ProbeResult(result.error, method, details, time.perf_counter() - start)


def _subset(source: ImageSource, n: Any, setting: str) -> np.ndarray | None:
    """A class-stratified subset of n examples of a split (all of it when n is None).

    Probing on a subset (settings ``train_examples`` / ``test_examples``) trades a little
    precision for speed, e.g. for CPU demos or ImageNet-1k's 1.28M training images.
    """
    from scalelab.data import stratified_subset

    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(source):
        raise ProbeError(
            f"probe setting {setting}={n!r} must be an integer in 1..{len(source)} "
            f"(the size of {source.name}'s split)"
        )
    return stratified_subset(source.labels, n, 0)
