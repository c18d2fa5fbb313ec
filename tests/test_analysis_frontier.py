"""The compute-optimal frontier: the points no other point beats with less or equal compute."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.analysis.frontier import frontier_indices

# Small integer grids make ties in compute, in error and exact duplicates common.
points = st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=60)


def _arrays(pts: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    c, e = np.array(pts, dtype=float).T
    return c * 1e15, e / 100  # compute in FLOP, error as a fraction


@settings(max_examples=300, deadline=None)
@given(points)
def test_no_frontier_point_is_dominated(pts: list[tuple[int, int]]) -> None:
    c, e = _arrays(pts)
    front = frontier_indices(c, e)
    for i in front:
        beaten = (c <= c[i]) & (e < e[i])
        cheaper_as_good = (c < c[i]) & (e <= e[i])
        assert not (beaten | cheaper_as_good).any()


@settings(max_examples=300, deadline=None)
@given(points)
def test_every_dominated_point_is_excluded(pts: list[tuple[int, int]]) -> None:
    c, e = _arrays(pts)
    front = set(frontier_indices(c, e).tolist())
    for i in range(len(c)):
        dominated = ((c <= c[i]) & (e <= e[i]) & ((c < c[i]) | (e < e[i]))).any()
        if dominated:
            assert i not in front
        else:
            # Not dominated: on the frontier itself, or an exact duplicate of a frontier point.
            twins = np.flatnonzero((c == c[i]) & (e == e[i]))
            assert len(front.intersection(twins.tolist())) == 1


@settings(max_examples=200, deadline=None)
@given(points)
def test_frontier_runs_up_in_compute_and_down_in_error(pts: list[tuple[int, int]]) -> None:
    c, e = _arrays(pts)
    front = frontier_indices(c, e)
    assert len(front) >= 1
    assert np.all(np.diff(c[front]) > 0)
    assert np.all(np.diff(e[front]) < 0)
    assert c[front[0]] == c.min()  # the cheapest point with the lowest error among them


def test_a_small_example() -> None:
    compute = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0])
    error = np.array([0.9, 0.8, 0.7, 0.75, 0.5, 0.5, 0.4])
    # 0.8 at C=2 loses to 0.7 at the same C; 0.75 at C=3 loses to 0.7 at C=2; 0.5 at C=5 ties
    # 0.5 at C=4 with more compute; 0.4 at C=5 is new.
    assert frontier_indices(compute, error).tolist() == [0, 2, 4, 6]
