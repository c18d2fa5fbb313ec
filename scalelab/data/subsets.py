"""Class-stratified, nested, deterministic subsets of N examples, stored as index files.

All subsets of a dataset for one seed are prefixes of a single ordering of its examples, so
the subset of N examples contains the subset of every smaller N (curves over N then differ
only by the examples added, not by a fresh draw). The ordering interleaves classes with
Balinski and Young's quota method: after n picks, class c has floor(n*f_c) or ceil(n*f_c)
examples, where f_c is its frequency in the full set -- the counts of largest-remainder
rounding, without its Alabama paradox (a class losing examples when N grows).
Within a class, examples come in an order drawn from the seed.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from pathlib import Path

import numpy as np

from scalelab.errors import DataError

# Orderings of sets at least this large are cached as .npy index files (they take seconds).
CACHE_MIN_EXAMPLES = 1_000_000


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` examples: class-stratified, nested in ``n``, deterministic."""
    labels = np.asarray(labels)
    if n <= 0:
        raise DataError(f"a subset needs at least one example, not N={n}; ask for N >= 1")
    if n > len(labels):
        raise DataError(
            f"asked for N={n:,} examples but the dataset has only {len(labels):,}; "
            f"lower N to at most {len(labels):,}"
        )
    return np.sort(_ordering(labels, n, seed))


def _ordering(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` examples of the seed's interleaved ordering (cached for large sets)."""
    if len(labels) < CACHE_MIN_EXAMPLES:
        return _interleave(labels, n, seed)
    digest = hashlib.sha1(np.ascontiguousarray(labels).view(np.uint8)).hexdigest()[:16]
    path = cache_dir() / "subsets" / f"{digest}-seed{seed}-n{n}.npy"
    if path.exists():
        return np.load(path)
    order = _interleave(labels, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.npy")
    np.save(partial, order)
    os.replace(partial, path)  # atomic: a reader never sees half an index file
    return order


def _interleave(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    # Members of each class in a seeded order: argsort of (class, random key).
    members = np.lexsort((rng.random(len(labels)), inverse))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())
    tie_break = rng.permutation(len(classes))
    # Class c's k-th pick (k from 1) is due at step ceil(k * total / size_c): the first step
    # at which floor(step * f_c) reaches k. At each step, among the classes still below their
    # exact share (taken_c < step * f_c, so one more cannot overshoot the ceiling) take the
    # one due earliest: every prefix then stays within one example of its exact share
    # (Balinski and Young's quota method). Integers only: no drift on 11M examples.
    heap = [(-(-total // int(s)), int(tie_break[c]), c) for c, s in enumerate(sizes)]
    heapq.heapify(heap)
    taken = np.zeros(len(classes), dtype=np.int64)
    picks = np.empty(n, dtype=np.int64)
    for step in range(1, n + 1):
        ahead = []
        while True:
            entry = heapq.heappop(heap)
            c = entry[2]
            if int(taken[c]) * total < step * int(sizes[c]):
                break
            ahead.append(entry)
        for other in ahead:
            heapq.heappush(heap, other)
        picks[step - 1] = members[starts[c] + taken[c]]
        taken[c] += 1
        if taken[c] < sizes[c]:
            due = -(-(int(taken[c]) + 1) * total // int(sizes[c]))
            heapq.heappush(heap, (due, entry[1], c))
    return picks


def checked_indices(indices: np.ndarray, size: int, name: str) -> np.ndarray:
    """``indices`` as int64, or DataError if any falls outside a split of ``size`` images."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= size):
        raise DataError(
            f"index out of range for {name} ({size} images); "
            "take indices from stratified_subset(source.labels, ...)"
        )
    return indices


def cache_dir() -> Path:
    return Path(os.environ.get("SCALELAB_CACHE", Path.home() / ".cache" / "scalelab"))
