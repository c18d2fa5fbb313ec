"""The public scaling data of tests/data in the layouts scalelab takes (not a test module).

Each writer turns one published file into the CSV of `scalelab import`; `isoflop_runs` gives
IsoFLOP rows as a `scalelab.load_runs` frame, for tests that need no database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "data"
ISOFLOPS = DATA / "isoflops_open_athena.csv"
CHINCHILLA = DATA / "chinchilla_fig4_epoch_extraction.csv"
NMT = DATA / "rnsl_benchmark_nmt_subset.csv"


def parabola_minima(rows: pd.DataFrame) -> pd.DataFrame:
    """Approach 2's first step written plainly, per stated budget: a parabola of loss in
    log10 P (numpy polyfit), its vertex, and log10 D there from a line through the profile's
    (log10 P, log10 D). Columns: budget, log_p, log_d."""
    minima = []
    for budget, profile in rows.groupby("budget"):
        x = np.log10(profile["params"].to_numpy())
        c2, c1, _ = np.polyfit(x, profile["loss"].to_numpy(), 2)
        vertex = -c1 / (2 * c2)
        line = np.polyfit(x, np.log10(profile["tokens"].to_numpy()), 1)
        minima.append((budget, vertex, np.polyval(line, vertex)))
    return pd.DataFrame(minima, columns=["budget", "log_p", "log_d"])


def isoflop_runs(rows: pd.DataFrame, target: str = "loss") -> pd.DataFrame:
    """IsoFLOP rows as a load_runs frame: one run per row, C = the stated budget."""
    n = len(rows)
    return pd.DataFrame(
        {
            "checkpoint_id": np.arange(1, n + 1),
            "job_id": np.arange(1, n + 1),
            "status": "done",
            "model": [f"P={p:.6g}" for p in rows["params"]],
            "params": rows["params"].to_numpy(float),
            "flops": rows["params"].to_numpy(float),
            "flop_convention": "params",
            "examples": rows["tokens"].to_numpy(float),
            "seed": 0,
            "epochs": 1.0,
            "compute": rows["budget"].to_numpy(float),
            "target": target,
            "method": "import",
            "error": rows["loss"].to_numpy(float),
        }
    )


def write_isoflop_import(rows: pd.DataFrame, path: Path, target: str) -> Path:
    """IsoFLOP rows for `scalelab import`, with the stated budget as compute."""
    pd.DataFrame(
        {
            "model": [f"P={p:.6g}" for p in rows["params"]],
            "params": rows["params"].round().astype(int),
            "examples": rows["tokens"].round().astype(int),
            "epochs": 1,
            "target": target,
            "error": rows["loss"],
            "compute": rows["budget"],
        }
    ).to_csv(path, index=False)
    return path


def write_chinchilla_import(path: Path) -> Path:
    """Epoch AI's 245 Chinchilla runs: tokens = FLOP / (6 P); compute is left to scalelab
    (3·P·D with FLOP(f) taken as P: half the file's 6·P·D, the MAC convention)."""
    rows = pd.read_csv(CHINCHILLA)
    params = rows["Model Size"]
    pd.DataFrame(
        {
            "model": [f"P={p:.6g}" for p in params],
            "params": params.round().astype(int),
            "examples": (rows["Training FLOP"] / (6 * params)).round().astype(int),
            "epochs": 1,
            "target": "chinchilla",
            "error": rows["loss"],
        }
    ).to_csv(path, index=False)
    return path


def write_nmt_import(path: Path) -> Path:
    """The NMT learning curves. The benchmark gives no parameter counts: every architecture is
    imported with params = 1, a unit rather than a size, so no law in P can be fitted (one
    model size) and the laws in N and in C ∝ N do not depend on it."""
    rows = pd.read_csv(NMT)
    pd.DataFrame(
        {
            "model": rows["Model"],
            "params": 1,
            "examples": rows["Seen Examples"].astype(int),
            "epochs": 1,
            "target": "nmt",
            "error": rows["Loss"],
        }
    ).to_csv(path, index=False)
    return path
