"""A sign that a sweep's recipe suits only some of its models: a larger model that trains worse.

At the same N and T a larger model of a scaling sweep reaches a lower upstream held-out error
(every size in the paper's Table does). Where a larger one trains worse, the recipe, most
often the learning rate, was tuned for the smaller ones, and every law through those points
measures the recipe rather than the scaling. The demo's first grids trained every size at LION
lr 1e-3: at N = 256k, T = 1, B-1/Wi-128 reached a held-out error of 0.78 against B-1/Wi-64's
0.74, and 0.64 at lr 3e-4. The check reads the upstream error only, never the target's, and
of each (model, N, T) its best swept setting: the fit may keep another one (it chooses on the
target's validation error), but a recipe that trains the larger model well is in the grid.
"""

from __future__ import annotations

import pandas as pd

# Two points of held-out error: about twice the spread between two seeds of one demo run
# (0.011 on average over 2,000 held-out images), so noise alone does not trip it.
INVERSION_TOLERANCE = 0.02


def size_inversion_notes(frame: pd.DataFrame) -> list[str]:
    """One note naming the worst (N, T) where a model trained worse upstream than a smaller
    one by more than INVERSION_TOLERANCE (seed means of each model's best setting), with how
    many (N, T) do; [] if none. ``frame``: a fit's checkpoints of every setting
    (Points.candidates)."""
    rows = frame.dropna(subset=["upstream_error"])
    cell = ["examples", "epochs", "params", "model"]
    means = (
        rows.groupby([*cell, "setting"], sort=True)["upstream_error"]
        .mean()
        .groupby(cell, sort=True)
        .min()
        .reset_index()
    )
    worst, cells = None, 0
    for (n, t), cell in means.groupby(["examples", "epochs"], sort=True):
        found = False
        for large in cell.itertuples():
            smaller = cell[cell["params"] < large.params]
            if smaller.empty:
                continue
            small = smaller.loc[smaller["upstream_error"].idxmin()]
            excess = large.upstream_error - small.upstream_error
            if excess > INVERSION_TOLERANCE:
                found = True
                if worst is None or excess > worst[0]:
                    worst = (excess, n, t, large, small)
        cells += found
    if worst is None:
        return []
    _, n, t, large, small = worst
    return [
        f"tuning: at N={int(n)}, T={t:g}, {large.model} ({int(large.params):,} parameters) "
        f"reached a higher upstream held-out error than the smaller {small.model} "
        f"({large.upstream_error:.4f} against {small.upstream_error:.4f}, seed means; "
        f"{cells} (N, T) with such an inversion): a larger model that trains worse points to a "
        "learning rate or batch size that suits only the smaller models, and the laws "
        "through its points measure the recipe; sweep lr in the grid (the fit keeps each "
        "model's best setting per N and T)"
    ]
