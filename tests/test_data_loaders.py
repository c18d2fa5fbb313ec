"""Loaders: FFCV and the array fallback give the same batches; epochs, shuffling, lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_formats import write_cifar10

from scalelab.data import downstream_source, make_loader, prepare_target, stratified_subset
from scalelab.data.loaders import ArrayLoader, FfcvLoader, check_beton, ffcv_available
from scalelab.data.sources import pretraining_source
from scalelab.errors import DataError

needs_ffcv = pytest.mark.skipif(not ffcv_available(), reason="ffcv is not installed")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders")
    write_cifar10(root / "raw", per_batch=20, n_test=30)
    prepare_target("cifar10", root / "raw", root / "data", workers=1)
    return downstream_source("cifar10", "train", 32, data_root=root / "data")


def _collect(loader) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.clone(), y.clone()) for x, y in loader], strict=True)
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


@needs_ffcv
def test_ffcv_and_array_loaders_agree_on_the_same_indices(cifar):
    assert cifar.beton is not None
    indices = stratified_subset(cifar.labels, 60, seed=1)
    args = dict(shuffle=False, seed=0, drop_last=False)
    ffcv = make_loader(cifar, indices, 16, "cpu", **args)
    array = make_loader(cifar, indices, 16, "cpu", backend="array", **args)
    assert isinstance(ffcv, FfcvLoader) and isinstance(array, ArrayLoader)
    assert len(ffcv) == len(array) == 4
    fx, fy = _collect(ffcv)
    ax, ay = _collect(array)
    assert fx.shape == ax.shape == (60, 3, 32, 32) and fx.dtype == np.uint8
    np.testing.assert_array_equal(fx, ax)
    np.testing.assert_array_equal(fy, ay)
    np.testing.assert_array_equal(ax, cifar.take(indices).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ay, cifar.labels[indices])


@needs_ffcv
def test_ffcv_shuffles_and_drops_the_last_partial_batch(cifar):
    indices = np.arange(50)
    loader = make_loader(cifar, indices, 16, "cpu", shuffle=True, seed=0, drop_last=True)
    x, y = _collect(loader)
    assert len(loader) == 3 and len(y) == 48 and y.dtype == np.int64
    assert set(map(bytes, x)) <= set(map(bytes, cifar.take(indices).transpose(0, 3, 1, 2)))


@needs_ffcv
def test_a_beton_of_another_resolution_is_refused(cifar):
    with pytest.raises(DataError) as err:
        check_beton(cifar.beton, 64, len(cifar))
    assert str(err.value) == (
        f"{cifar.beton} was written at 32x32 but the dataset is 64x64; prepare it again"
    )


def test_array_loader_epochs_reshuffle_deterministically():
    source = pretraining_source("synthetic", "heldout", 16)
    indices = stratified_subset(source.labels, 100, seed=0)
    first = make_loader(source, indices, 32, "cpu", shuffle=True, seed=7, drop_last=False)
    second = make_loader(source, indices, 32, "cpu", shuffle=True, seed=7, drop_last=False)
    epoch_a, epoch_b = _collect(first), _collect(first)
    assert len(first) == 4
    assert sorted(epoch_a[1]) == sorted(source.labels[indices])
    assert not np.array_equal(epoch_a[1], epoch_b[1])  # a new order every epoch
    np.testing.assert_array_equal(_collect(second)[0], epoch_a[0])  # same seed, same epochs
    x, y = _collect(make_loader(source, indices, 32, "cpu", shuffle=False, seed=0, drop_last=True))
    assert len(y) == 96
    np.testing.assert_array_equal(x, source.take(indices[:96]).transpose(0, 3, 1, 2))


def test_streaming_gives_the_same_batches_as_in_memory(monkeypatch):
    source = pretraining_source("synthetic", "train", 16)
    indices = stratified_subset(source.labels[:5000], 64, seed=0)
    in_memory = _collect(
        make_loader(source, indices, 16, "cpu", shuffle=True, seed=1, drop_last=False)
    )
    monkeypatch.setattr("scalelab.data.loaders.IN_MEMORY_BYTES", 0)
    streamed = _collect(
        make_loader(source, indices, 16, "cpu", shuffle=True, seed=1, drop_last=False)
    )
    np.testing.assert_array_equal(in_memory[0], streamed[0])
    np.testing.assert_array_equal(in_memory[1], streamed[1])


def test_loader_errors():
    source = pretraining_source("synthetic", "heldout", 16)
    with pytest.raises(DataError, match=r"10 examples make no full batch of 32; lower the batch"):
        make_loader(source, np.arange(10), 32, "cpu", shuffle=False, seed=0, drop_last=True)
    with pytest.raises(DataError, match=r"synthetic has no .beton file"):
        make_loader(
            source, np.arange(10), 4, "cpu", shuffle=False, seed=0, drop_last=False, backend="ffcv"
        )
