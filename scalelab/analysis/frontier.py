"""The compute-optimal frontier: the lower envelope of error against compute (paper Fig. 1, 6)."""

from __future__ import annotations

import numpy as np


def frontier_indices(compute: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Indices of the points that no other point beats with less or equal compute.

    A point is on the frontier when its error is strictly below that of every point with
    less or equal compute; of exact duplicates only the first is kept. Returned in order of
    increasing compute (and so of decreasing error).
    """
    order = np.lexsort((error, compute))  # by compute, ties by error
    sorted_error = error[order]
    best_before = np.minimum.accumulate(np.concatenate([[np.inf], sorted_error[:-1]]))
    return order[sorted_error < best_before]
