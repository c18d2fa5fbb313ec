"""Loaders: FFCV and the array fallback give the same batches; epochs, shuffling, lengths."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from data_formats import write_cifar10

from scalelab.data import downstream_source, make_loader, prepare_target, stratified_subset
from scalelab.data.loaders import (
    ArrayLoader,
    FfcvLoader,
    available_memory,
    check_beton,
    evaluation_loader,
    ffcv_available,
    ffcv_reading,
)
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


def _collect_within(loader, seconds: float = 120) -> tuple[np.ndarray, np.ndarray]:
    """_collect under torch.inference_mode on another thread; fail if it has not ended in time."""
    out: dict = {}

    def consume() -> None:
        with torch.inference_mode():
            out["batches"] = _collect(loader)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the loader hung for {seconds} s under inference mode"
    return out["batches"]


@needs_ffcv
def test_ffcv_loader_yields_under_inference_mode(cifar):
    # FFCV used to allocate its buffers as inference tensors here; its thread's copy into them
    # then failed, silently, and the consumer waited forever (issue 12).
    indices = np.arange(40)
    x, y = _collect_within(
        make_loader(cifar, indices, 16, "cpu", shuffle=False, seed=0, drop_last=False)
    )
    np.testing.assert_array_equal(y, cifar.labels[indices])
    np.testing.assert_array_equal(x, cifar.take(indices).transpose(0, 3, 1, 2))


@needs_ffcv
def test_both_loaders_shuffle_in_ffcvs_random_order_set_by_epoch(cifar, monkeypatch):
    monkeypatch.delenv("SCALELAB_LOADER", raising=False)
    indices = stratified_subset(cifar.labels, 50, seed=2)
    args = dict(shuffle=True, seed=11, drop_last=False)
    ffcv = make_loader(cifar, indices, 16, "cpu", **args)
    array = make_loader(cifar, indices, 16, "cpu", backend="array", **args)
    assert isinstance(ffcv, FfcvLoader) and ffcv.order == "RANDOM" and ffcv.os_cache
    for epoch in (0, 1):
        # FFCV's Random traversal: numpy's default_rng(seed + epoch) permutes the indices.
        order = np.random.default_rng(11 + epoch).permutation(indices)
        for loader in (ffcv, array):
            x, y = _collect(loader)
            np.testing.assert_array_equal(y, cifar.labels[order])
            np.testing.assert_array_equal(x, cifar.take(order).transpose(0, 3, 1, 2))
    # One loader serves a whole job: setting its epoch gives that epoch's order.
    again = make_loader(cifar, indices, 16, "cpu", **args)
    again.epoch = 1
    order = np.random.default_rng(12).permutation(indices)
    np.testing.assert_array_equal(_collect(again)[1], cifar.labels[order])


@needs_ffcv
def test_a_beton_beyond_memory_is_read_quasi_randomly_without_the_os_cache(cifar, monkeypatch):
    size = cifar.beton.stat().st_size
    monkeypatch.setattr("scalelab.data.loaders.available_memory", lambda: size)  # 2x too small
    indices = np.arange(60)
    loader = make_loader(cifar, indices, 16, "cpu", shuffle=True, seed=3, drop_last=False)
    assert (loader.order, loader.os_cache) == ("QUASI_RANDOM", False)
    first, second = _collect(loader)[1], _collect(loader)[1]
    for labels in (first, second):  # every example once per epoch
        assert sorted(labels) == sorted(cifar.labels[indices])
    fresh = make_loader(cifar, indices, 16, "cpu", shuffle=True, seed=3, drop_last=False)
    fresh.epoch = 1
    np.testing.assert_array_equal(_collect(fresh)[1], second)  # a function of (seed, epoch)
    evaluation = make_loader(cifar, indices, 16, "cpu", shuffle=False, seed=0, drop_last=False)
    assert (evaluation.order, evaluation.os_cache) == ("SEQUENTIAL", False)


def test_ffcv_reading_follows_the_betons_size_against_free_memory():
    gib = 1 << 30
    assert ffcv_reading(147 * gib, 128 * gib, shuffle=True) == ("QUASI_RANDOM", False)
    assert ffcv_reading(64 * gib, 128 * gib, shuffle=True) == ("RANDOM", True)
    assert ffcv_reading(65 * gib, 128 * gib, shuffle=True) == ("QUASI_RANDOM", False)
    assert ffcv_reading(147 * gib, 128 * gib, shuffle=False) == ("SEQUENTIAL", False)
    assert ffcv_reading(1 * gib, 128 * gib, shuffle=False) == ("SEQUENTIAL", True)


def test_available_memory_is_meminfos_memavailable():
    with open("/proc/meminfo") as meminfo:
        line = next(line for line in meminfo if line.startswith("MemAvailable:"))
    expected = int(line.split()[1]) * 1024
    assert abs(available_memory() - expected) < 256 << 20  # the system moves meanwhile


@needs_ffcv
def test_scalelab_loader_env_forces_a_loader(cifar, monkeypatch):
    indices = np.arange(20)
    args = dict(shuffle=False, seed=0, drop_last=False)
    synthetic = pretraining_source("synthetic", "heldout", 16)
    monkeypatch.setenv("SCALELAB_LOADER", "array")
    assert isinstance(make_loader(cifar, indices, 8, "cpu", **args), ArrayLoader)
    monkeypatch.setenv("SCALELAB_LOADER", "ffcv")
    assert isinstance(make_loader(cifar, indices, 8, "cpu", **args), FfcvLoader)
    # Nothing on disk for FFCV to read: synthetic sources keep the array loader.
    assert isinstance(make_loader(synthetic, indices, 8, "cpu", **args), ArrayLoader)
    monkeypatch.setenv("SCALELAB_LOADER", "memmap")
    with pytest.raises(DataError) as err:
        make_loader(cifar, indices, 8, "cpu", **args)
    assert (
        str(err.value) == "SCALELAB_LOADER='memmap' is not a loader; use one of auto, ffcv, array"
    )


@needs_ffcv
def test_evaluation_loaders_are_kept_for_ffcv_only(cifar, monkeypatch):
    monkeypatch.delenv("SCALELAB_LOADER", raising=False)
    indices = np.arange(30)
    first = evaluation_loader(cifar, indices, 16, "cpu")
    assert isinstance(first, FfcvLoader)
    assert evaluation_loader(cifar, indices.copy(), 16, "cpu") is first  # built, compiled once
    assert evaluation_loader(cifar, indices[:20], 16, "cpu") is not first
    for _ in range(2):  # a kept loader gives the whole split in order at every pass
        x, y = _collect(first)
        np.testing.assert_array_equal(y, cifar.labels[indices])
        np.testing.assert_array_equal(x, cifar.take(indices).transpose(0, 3, 1, 2))
    synthetic = pretraining_source("synthetic", "heldout", 16)
    arrays = [evaluation_loader(synthetic, indices, 16, "cpu") for _ in range(2)]
    assert isinstance(arrays[0], ArrayLoader) and arrays[0] is not arrays[1]  # memory not held
    monkeypatch.setenv("SCALELAB_LOADER", "array")
    assert isinstance(evaluation_loader(cifar, indices, 16, "cpu"), ArrayLoader)
