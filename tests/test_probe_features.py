"""Frozen-feature extraction from a real (tiny) model and the probe on a downstream target."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scalelab.models import build_model
from scalelab.probe import ProbeResult, extract_features, probe_encoder, run_probe
from scalelab.probe.features import _prelogits


@dataclass
class MemorySource:
    """An in-memory image source with the attributes scalelab.data's sources have."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    num_classes: int
    name: str = "memory"
    mean: tuple[float, float, float] = (0.4, 0.5, 0.6)
    std: tuple[float, float, float] = (0.2, 0.25, 0.3)
    beton: Path | None = None

    @property
    def resolution(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.images[indices]


def memory_source(n: int, resolution: int, classes: int, seed: int = 0) -> MemorySource:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, resolution, resolution, 3), dtype=np.uint8)
    return MemorySource(images, rng.integers(0, classes, size=n).astype(np.int64), classes)


def expected_prelogits(model: nn.Module, source: MemorySource) -> torch.Tensor:
    """Normalise by hand ((x/255 − mean)/std, channels first) and run the model directly."""
    x = torch.from_numpy(source.images).permute(0, 3, 1, 2).double() / 255
    mean = torch.tensor(source.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(source.std, dtype=torch.float64)[:, None, None]
    with torch.no_grad():
        return model(((x - mean) / std).float())[1]


def test_features_are_the_models_prelogits_in_source_order():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=7, resolution=8)
    source = memory_source(37, resolution=8, classes=3)  # 37: the last batch is partial
    feats, labels = extract_features(model, source, resolution=8, device="cpu", batch_size=8)
    assert feats.dtype == torch.float32 and feats.shape == (37, model.feature_dim)
    assert labels.dtype == torch.int64 and labels.tolist() == source.labels.tolist()
    torch.testing.assert_close(feats, expected_prelogits(model, source), rtol=1e-4, atol=1e-4)
    assert not feats.requires_grad


def test_extraction_runs_in_eval_mode_and_restores_the_training_mode():
    modes = []

    class Recorder(nn.Module):
        feature_dim = 3

        def forward(self, x):
            modes.append(self.training)
            feats = x.flatten(1)[:, :3]
            return feats, feats

    model = Recorder().train()
    extract_features(model, memory_source(10, 4, 2), resolution=4, device="cpu", batch_size=4)
    assert modes == [False, False, False] and model.training


def test_a_batch_that_does_not_fit_the_gpu_is_split_in_halves():
    class SmallGPU(nn.Module):
        def forward(self, x):
            if x.shape[0] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return x * 0, x * 2

    x = torch.arange(10.0)[:, None]
    torch.testing.assert_close(_prelogits(SmallGPU(), x), x * 2)


def test_probe_encoder_trains_on_the_train_split_and_tests_on_the_test_split(monkeypatch):
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=4, resolution=8)
    splits = {"train": memory_source(60, 8, 3, seed=1), "test": memory_source(30, 8, 3, seed=2)}
    asked = []

    def fake_downstream_source(target, split, resolution, data_root=None, dataset="synthetic"):
        asked.append((target, split, resolution, data_root, dataset))
        return splits[split]

    monkeypatch.setattr("scalelab.probe.features.downstream_source", fake_downstream_source)
    world = "synthetic:pose_zipf=2"  # the encoder's pretraining set: its targets share its poses
    result = probe_encoder(
        model,
        "tiny",
        method="ridge",
        resolution=8,
        device="cpu",
        data_root=Path("/d"),
        seed=4,
        dataset=world,
    )
    assert asked == [
        ("tiny", "train", 8, Path("/d"), world),
        ("tiny", "test", 8, Path("/d"), world),
    ]
    train_x = expected_prelogits(model, splits["train"])
    test_x = expected_prelogits(model, splits["test"])
    direct = run_probe(
        train_x, splits["train"].labels, test_x, splits["test"].labels, 3, "ridge", seed=4
    )
    assert result.error == pytest.approx(direct.error, abs=1 / 30 + 1e-9)  # ≤ one test image
    assert result.details["train_examples"] == 60 and result.details["test_examples"] == 30
    assert result.details["num_classes"] == 3 and result.details["seed"] == 4


@pytest.mark.slow  # renders the 60,000 images of synthetic-cifar10 (minutes on a CPU)
def test_probe_encoder_probes_a_synthetic_target():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=10, resolution=16)
    result = probe_encoder(model, "synthetic-cifar10", method="ridge", resolution=16, device="cpu")
    assert isinstance(result, ProbeResult) and result.method == "ridge"
    assert result.details["target"] == "synthetic-cifar10"
    assert result.details["num_classes"] == 10 and result.details["feature_dim"] == 16
    # A random-init encoder is a random feature map: better than chance, far from perfect.
    assert 0.0 < result.error < 0.9
    assert result.wall_seconds >= result.details["extract_seconds"] > 0
    again = probe_encoder(model, "synthetic-cifar10", method="ridge", resolution=16, device="cpu")
    assert again.error == result.error


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_features_stay_on_the_gpu_and_match_the_cpu():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=5, resolution=8)
    source = memory_source(20, resolution=8, classes=5)
    cpu, _ = extract_features(model, source, resolution=8, device="cpu")
    gpu, labels = extract_features(model.cuda(), source, resolution=8, device="cuda")
    assert gpu.device.type == "cuda" and labels.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


def test_probe_on_a_stratified_subset_of_the_target_splits():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=10, resolution=16)
    settings = {"train_examples": 2000, "test_examples": 500}
    result = probe_encoder(
        model,
        "synthetic-cifar10",
        method="ridge",
        resolution=16,
        device="cpu",
        settings=settings,
    )
    assert result.details["train_examples"] == 2000 and result.details["test_examples"] == 500
    assert 0 <= result.error <= 1
    from scalelab.errors import ProbeError

    with pytest.raises(ProbeError) as info:
        probe_encoder(
            model,
            "synthetic-cifar10",
            method="ridge",
            resolution=16,
            device="cpu",
            settings={"test_examples": 20000},
        )
    assert str(info.value) == (
        "probe setting test_examples=20000 must be an integer in 1..10000 "
        "(the size of synthetic-cifar10's split)"
    )


def test_the_halved_retry_runs_after_the_out_of_memory_error_is_released():
    """The retry must not run inside the except block, whose traceback keeps the failed
    forward pass's frames (and activations) alive while the cache is emptied."""
    handling = []

    class SmallGPU(nn.Module):
        def forward(self, x):
            handling.append(sys.exc_info()[0])  # an exception being handled right now
            if x.shape[0] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return x * 0, x * 2

    x = torch.arange(10.0)[:, None]
    torch.testing.assert_close(_prelogits(SmallGPU(), x), x * 2)
    assert len(handling) == 7 and handling == [None] * 7  # 10 -> 5, 5 -> 2, 3, 2, 3


def test_the_probe_reports_every_batch_through_the_encoder_as_progress():
    """A worker's watchdog renews the lease only on progress: a long lion probe (50 epochs of
    augmented images through the encoder) must show it at every batch, not once per probe."""
    from scalelab.probe.features import _default_batch_size

    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=10, resolution=16)
    calls = []
    probe_encoder(
        model,
        "synthetic-cifar10",
        method="lion",
        resolution=16,
        device="cpu",
        settings={"train_examples": 2000, "test_examples": 500, "epochs": 3, "batch_size": 500},
        alive=lambda: calls.append(1),
    )
    extraction = _default_batch_size(torch.device("cpu"))
    batches = -(-2000 // extraction) - (-500 // extraction)  # train and test features
    assert len(calls) == batches + 3 * (2000 // 500)  # then 3 epochs of 4 augmented batches
