"""Frozen features of an encoder on a downstream target, and the probe on them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scalelab.data import downstream_source, to_model_input
from scalelab.data.loaders import evaluation_loader
from scalelab.data.sources import ImageSource
from scalelab.errors import ProbeError
from scalelab.probe.run import ProbeResult, run_probe


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
) -> tuple[Tensor, Tensor]:
    """(features float32 (n, D), labels int64 (n,)) of every example of `source`, on `device`.

    Eval mode, no augmentation, the source's own mean/std, upscaled to the model's
    `resolution`. The model's train/eval mode is restored afterwards, so a worker can probe
    mid-training.
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
    finally:
        model.train(was_training)
    return torch.cat(features), torch.cat(labels).to(torch.int64)


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
) -> ProbeResult:
    """Probe `model`'s pre-logits on `target`: train on its train split, error on its test split.

    wall_seconds covers extraction and fit; details split them (extract_seconds).

    Example: probe_encoder(model, "synthetic-cifar10", method="ridge", resolution=64, device="cpu")
    """
    start = time.perf_counter()
    settings = dict(settings or {})
    sizes = {split: settings.pop(f"{split}_examples", None) for split in ("train", "test")}
    features = {}
    for split, n in sizes.items():
        source = downstream_source(target, split, resolution, data_root)
        features[split] = extract_features(
            model,
            source,
            resolution=resolution,
            device=device,
            indices=_subset(source, n, f"{split}_examples"),
        )
        num_classes = source.num_classes
    extract_seconds = time.perf_counter() - start
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    result = run_probe(
        train_x, train_y, test_x, test_y, num_classes, method, settings=settings, seed=seed
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
