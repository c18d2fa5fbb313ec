"""Subsets: class-stratified (largest-remainder counts), nested in N, deterministic, sorted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.data import stratified_subset
from scalelab.data import subsets as subsets_module
from scalelab.errors import DataError

class_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=12)


def _labels(sizes: list[int], seed: int) -> np.ndarray:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(labels)


@settings(max_examples=60, deadline=None)
@given(sizes=class_sizes, seed=st.integers(0, 2**31), data=st.data())
def test_every_class_gets_its_share_within_one_example(sizes, seed, data):
    labels = _labels(sizes, seed)
    n = data.draw(st.integers(1, len(labels)))
    subset = stratified_subset(labels, n, seed)
    counts = np.bincount(labels[subset], minlength=len(sizes))
    exact = n * np.asarray(sizes) / len(labels)
    assert np.all(counts >= np.floor(exact)) and np.all(counts <= np.ceil(exact))
    assert len(subset) == n and len(np.unique(subset)) == n
    assert np.all(np.diff(subset) > 0)  # sorted


@settings(max_examples=60, deadline=None)
@given(sizes=class_sizes, seed=st.integers(0, 2**31), data=st.data())
def test_smaller_subsets_are_contained_in_larger_ones(sizes, seed, data):
    labels = _labels(sizes, seed)
    small, large = sorted(data.draw(st.lists(st.integers(1, len(labels)), min_size=2, max_size=2)))
    assert set(stratified_subset(labels, small, seed)) <= set(
        stratified_subset(labels, large, seed)
    )


@settings(max_examples=30, deadline=None)
@given(sizes=class_sizes, seed=st.integers(0, 2**31))
def test_deterministic_for_a_seed_and_different_across_seeds(sizes, seed):
    labels = _labels(sizes, 0)
    n = max(1, len(labels) // 2)
    np.testing.assert_array_equal(
        stratified_subset(labels, n, seed), stratified_subset(labels.copy(), n, seed)
    )


def test_seeds_draw_different_members():
    labels = np.arange(1000) % 10
    assert not np.array_equal(stratified_subset(labels, 100, 0), stratified_subset(labels, 100, 1))


def test_errors_name_the_limit():
    with pytest.raises(DataError) as err:
        stratified_subset(np.zeros(50, dtype=np.int64), 51, 0)
    assert str(err.value) == (
        "asked for N=51 examples but the dataset has only 50; lower N to at most 50"
    )
    with pytest.raises(DataError, match=r"at least one example, not N=0"):
        stratified_subset(np.zeros(5, dtype=np.int64), 0, 0)


def test_large_sets_are_cached_as_index_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(subsets_module, "CACHE_MIN_EXAMPLES", 100)
    labels = np.arange(500) % 7
    first = stratified_subset(labels, 70, 3)
    files = list((tmp_path / "subsets").glob("*.npy"))
    assert len(files) == 1 and files[0].name.endswith("-seed3-n70.npy")
    np.testing.assert_array_equal(np.sort(np.load(files[0])), first)
    np.testing.assert_array_equal(stratified_subset(labels, 70, 3), first)
