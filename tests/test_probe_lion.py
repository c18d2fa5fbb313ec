"""The `lion` probe is the authors' `finetune.py --mode linear`, checked against their loop."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scalelab.errors import ProbeError
from scalelab.models import build_model
from scalelab.probe import probe_encoder, run_probe
from scalelab.probe.features import augmented_epochs, extract_features
from scalelab.probe.gradient import fit_lion

# The authors' LION, one copy shared with the training-step benchmark.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from authors_reference import AuthorsLion  # noqa: E402


def authors_linear_probe(x, y, classes, *, seed, lr, epochs, batch_size, smooth, clip):
    """finetune.py --mode linear on fixed features: its train() loop, written out again.

    The head is a fresh nn.Linear; the batch order is scalelab's documented one (a torch
    permutation per epoch from a generator seeded with the probe's seed), since FFCV's
    QUASI_RANDOM order cannot be replayed on features.
    """
    torch.manual_seed(seed)
    head = nn.Linear(x.shape[1], classes)
    opt = AuthorsLion(head.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=smooth)
    order_rng = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=order_rng)
        for step in range(x.shape[0] // batch_size):  # drop_last=True
            rows = order[step * batch_size : (step + 1) * batch_size]
            loss = loss_fn(head(x[rows]), y[rows])
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(head.parameters(), clip)
            opt.step()
            opt.zero_grad()
    return head


def raw_features(n: int, dim: int, classes: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(classes, dim, generator=g)[y] + torch.randn(n, dim, generator=g)
    return 5 * x + 2, y  # pre-logits are neither centred nor unit-scaled


# Largest |difference| of any weight or bias from the authors' loop: 0 measured here (the same
# float32 operations in the same order); the tolerance allows one sign flip of a near-zero
# LION update on another BLAS (2·lr).
WEIGHT_TOLERANCE = 2 * 1e-3


def test_the_lion_probe_reaches_the_authors_weights():
    x, y = raw_features(203, 12, 5, seed=1)  # 203 = 6 batches of 32 and a partial one dropped
    settings = {"lr": 1e-3, "epochs": 8, "batch_size": 32, "label_smoothing": 0.3, "clip": 1.0}
    classifier, _ = fit_lion(x, y, 5, seed=7, weight_decay=0.0, augment=False, **settings)
    reference = authors_linear_probe(
        x, y, 5, seed=7, lr=1e-3, epochs=8, batch_size=32, smooth=0.3, clip=1.0
    )
    weight_gap = (classifier.weight.T - reference.weight).abs().max().item()
    bias_gap = (classifier.bias - reference.bias).abs().max().item()
    assert max(weight_gap, bias_gap) <= WEIGHT_TOLERANCE
    # The head moved from its default init (each step moves every weight by lr).
    torch.manual_seed(7)
    init = nn.Linear(12, 5)
    assert (reference.weight - init.weight).abs().max().item() > 4e-3
    predictions = reference(x).argmax(1)
    assert torch.equal(classifier.predict(x), predictions)


def test_clipping_and_smoothing_change_the_weights():
    # Guards the comparison above: each setting is live, not silently ignored.
    x, y = raw_features(128, 8, 4, seed=2)
    base = {"lr": 1e-3, "epochs": 4, "batch_size": 32, "weight_decay": 0.0, "augment": False}
    weights = {
        name: fit_lion(x, y, 4, seed=0, **base, **extra)[0].weight
        for name, extra in {
            "authors": {"label_smoothing": 0.3, "clip": 1.0},
            "no smoothing": {"label_smoothing": 0.0, "clip": 1.0},
            "no clip": {"label_smoothing": 0.3, "clip": 0.0},
        }.items()
    }
    assert not torch.equal(weights["authors"], weights["no smoothing"])
    clipped = authors_linear_probe(
        x, y, 4, seed=0, lr=1e-3, epochs=4, batch_size=32, smooth=0.3, clip=0.0
    )
    assert (weights["no clip"] - clipped.weight.T).abs().max().item() <= WEIGHT_TOLERANCE


def test_augment_needs_images_and_a_full_batch():
    x, y = raw_features(40, 4, 2, seed=3)
    with pytest.raises(ProbeError) as exc:
        run_probe(x, y, x, y, 2, "lion", settings={"batch_size": 8})
    assert str(exc.value) == (
        "the lion probe's augment = true needs the training images, not features; "
        "probe an encoder (scalelab probe, probe_encoder) or set settings.augment = false"
    )
    with pytest.raises(ProbeError) as exc:
        run_probe(x, y, x, y, 2, "lion", settings={"augment": False})
    assert str(exc.value) == (
        "the training split has 40 examples, no full batch of 4096 (the lion probe drops the "
        "last partial batch, as the authors' loader does); lower settings.batch_size"
    )


def test_augmented_epochs_draw_new_crops_and_test_images_stay_whole():
    from scalelab.data import downstream_source

    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=10, resolution=16)
    source = downstream_source("synthetic-cifar10", "train", 16)
    indices = np.arange(96)
    epochs = augmented_epochs(
        model, source, resolution=16, device="cpu", batch_size=32, seed=0, indices=indices
    )
    first, second = list(epochs()), list(epochs())
    assert [f.shape for f, _ in first] == [(32, 16)] * 3  # 96 / 32, full batches only
    plain, labels = extract_features(model, source, resolution=16, device="cpu", indices=indices)
    # Same examples each epoch (a new order), features of new crops each time.
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(labels.tolist())
    total = lambda batches: float(torch.cat([f for f, _ in batches]).sum())  # noqa: E731
    assert total(first) != pytest.approx(total(second), rel=1e-6)
    assert total(first) != pytest.approx(float(plain.sum()), rel=1e-6)


def test_probe_encoder_runs_the_augmented_protocol():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=10, resolution=16)
    settings = {"epochs": 2, "batch_size": 64, "lr": 1e-3, "train_examples": 256}
    result = probe_encoder(
        model, "synthetic-cifar10", method="lion", resolution=16, device="cpu", settings=settings
    )
    assert result.details["augment"] is True and result.details["standardised"] is False
    assert result.details["train_examples"] == 256 and 0.0 <= result.error <= 1.0
