"""Peer benchmark, fits: scalelab's parametric E(N, D) against the `chinchilla` package.

Data: Epoch AI's 245 Chinchilla runs (shared/external), without the 5 highest-loss runs as
Besiroglu et al. 2024 did: 240 runs, tokens D = FLOP / (6 N). Both tools fit
L(N, D) = E + A/N^alpha + B/D^beta with the Chinchilla paper's loss (Huber, delta = 1e-3, on
log L) from its grid of initial values (a, b in {0, 5, ..., 25}, e in {-1, -0.5, ..., 1},
alpha, beta in {0, 0.5, ..., 2}: 4,500 starts):
- the peer: kyo-takano's `chinchilla` (pip install chinchilla), `Chinchilla.fit()` with
  `loss_fn=log_huber(delta=1e-3)`, which runs SciPy BFGS from every start in a process pool
  of os.cpu_count() workers, in long double;
- scalelab: `fit_parametric`, the function behind `scalelab fit`'s parametric part, on one
  BLAS thread (screens the grid, then L-BFGS-B from the 24 best starts, analytic gradient);
  and the whole `scalelab fit --bootstrap 0` command on the same runs imported, as a user
  runs it (process start and every law, not only this one).
Figures: wall time (ratio peer / scalelab) and the largest relative difference in A, B, E,
alpha, beta.

Usage: python benchmarks/bench_peer_fit.py [--quick]   (--quick: a 2·2·2·2·2 grid for the peer)
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine, write_section

from scalelab.analysis.blas import one_blas_thread
from scalelab.analysis.chinchilla import (
    GRID_A,
    GRID_ALPHA,
    GRID_B,
    GRID_BETA,
    GRID_E,
    fit_parametric,
)

ROOT = Path(__file__).resolve().parents[1]
# The repository's copy of shared/external's file (tests/data/README.md says where it is from).
DATA = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "chinchilla_fig4_epoch_extraction.csv"
)
DELTA = 1e-3  # the Chinchilla paper's Huber delta
NAMES = ("A", "B", "E", "alpha", "beta")


def epoch_runs() -> pd.DataFrame:
    """Epoch's 245 runs less the 5 highest losses (their exclusion): columns N, D, loss."""
    raw = pd.read_csv(DATA)
    raw = raw[raw["loss"] < np.sort(raw["loss"])[-5]]
    n = raw["Model Size"].to_numpy(float)
    tokens = raw["Training FLOP"].to_numpy(float) / (6 * n)
    return pd.DataFrame({"N": n, "D": tokens, "loss": raw["loss"].to_numpy(float)})


def peer_fit(runs: pd.DataFrame, quick: bool) -> tuple[dict[str, float], float]:
    """The `chinchilla` package's fit: parameters and wall seconds of `fit()` alone."""
    from chinchilla import Chinchilla
    from chinchilla._metrics import log_huber

    # Keys in the order the package unpacks them (E, A, B, alpha, beta); lower case = log.
    grid = {"e": GRID_E, "a": GRID_A, "b": GRID_B, "alpha": GRID_ALPHA, "beta": GRID_BETA}
    if quick:
        grid = {k: np.array([v[1], v[-2]]) for k, v in grid.items()}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its overflow warnings from far-off starts
        cc = Chinchilla(
            project_dir=f"{tmp}/cc",
            param_grid={k: tuple(float(x) for x in v) for k, v in grid.items()},
            loss_fn=functools.partial(log_huber, delta=DELTA),
            log_level=logging.ERROR,
        )
        cc.database.df = runs.assign(C=6 * runs["N"] * runs["D"])[["C", "N", "D", "loss"]]
        cc.visualizer.optim = lambda *a, **k: None  # its plot of the fit is not fitting time
        start = time.perf_counter()
        cc.fit(parallel=True)
        seconds = time.perf_counter() - start
    return {name: float(getattr(cc, name)) for name in NAMES}, seconds


@one_blas_thread
def ours_fit(runs: pd.DataFrame, repeats: int) -> tuple[dict[str, float], float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit = fit_parametric(runs["N"].to_numpy(), runs["D"].to_numpy(), runs["loss"].to_numpy())
        times.append(time.perf_counter() - start)
    return {name: float(getattr(fit, name)) for name in NAMES}, statistics.median(times)


def command_fit(runs: pd.DataFrame) -> tuple[dict[str, float], float]:
    """The whole `scalelab fit` command as a user runs it on the imported runs: process start,
    every law (frontier, compute law, Approach 2, parametric...), no bootstrap; the import
    before it is not timed."""
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame(
            {
                "model": [f"P={p:.6g}" for p in runs["N"]],
                "params": runs["N"].round().astype(int),
                "examples": runs["D"].round().astype(int),
                "epochs": 1,
                "target": "chinchilla",
                "error": runs["loss"],
            }
        ).to_csv(f"{tmp}/runs.csv", index=False)
        cli = [sys.executable, "-m", "scalelab.cli"]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        quiet = {"check": True, "env": env, "stdout": subprocess.DEVNULL}
        subprocess.run([*cli, "import", f"{tmp}/runs.csv", "--db", f"{tmp}/runs.db"], **quiet)
        start = time.perf_counter()
        subprocess.run(
            [
                *cli,
                "fit",
                "--target",
                "chinchilla",
                "--bootstrap",
                "0",
                "--json",
                f"{tmp}/fit.json",
                "--db",
                f"{tmp}/runs.db",
            ],
            **quiet,
        )
        seconds = time.perf_counter() - start
        fit = json.loads(Path(f"{tmp}/fit.json").read_text())["parametric"]
    return {name: float(fit[name]) for name in NAMES}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 32-start grid for the peer")
    args = parser.parse_args()
    runs = epoch_runs()
    load_before = os.getloadavg()[0]
    ours, ours_s = ours_fit(runs, 1 if args.quick else 3)
    command, command_s = command_fit(runs)
    peer, peer_s = peer_fit(runs, args.quick)
    rel = {k: abs(ours[k] - peer[k]) / abs(peer[k]) for k in NAMES}
    rel_command = max(abs(command[k] - peer[k]) / abs(peer[k]) for k in NAMES)
    worst = max(rel, key=rel.get)
    grid = "2⁵ = 32 starts (`--quick`)" if args.quick else "6·6·5·5·5 = 4,500 starts"
    lines = [
        "## Peer: parametric fit against the `chinchilla` package",
        "",
        f"Machine: {machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after. Epoch AI's Chinchilla extraction, {len(runs)} runs "
        "(the 5 highest losses left out, as Besiroglu et al. 2024), "
        f"L(N, D) = E + A/N^α + B/D^β, Huber (δ = {DELTA:g}) on log L, the Chinchilla "
        f"paper's grid of starts ({grid} for the peer). Peer: `chinchilla` "
        "(kyo-takano) `Chinchilla.fit()` with `log_huber`, SciPy BFGS from every start in a "
        f"pool of {os.cpu_count()} processes, long double; one run, its plot not timed. "
        "scalelab: `fit_parametric` (the parametric part of `scalelab fit`), one BLAS "
        "thread, grid screened then L-BFGS-B from the best 24 starts; median of "
        f"{1 if args.quick else 3}.",
        "",
        "| tool | wall s | E | A | B | α | β |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    tools = (
        ("chinchilla (peer)", peer, peer_s),
        ("scalelab `fit_parametric`", ours, ours_s),
        ("scalelab `fit` (whole command)", command, command_s),
    )
    for tool, p, s in tools:
        lines.append(
            f"| {tool} | {s:.2f} | {p['E']:.4f} | {p['A']:.2f} | {p['B']:.2f} | "
            f"{p['alpha']:.4f} | {p['beta']:.4f} |"
        )
    lines += [
        "",
        f"Ratio: scalelab's parametric fit is **{peer_s / ours_s:.1f}×** faster than the "
        f"peer's (peer wall ÷ scalelab wall); the whole `scalelab fit --bootstrap 0` command "
        f"(process start, import of scalelab, every law, JSON; the `scalelab import` before it "
        f"not timed) is **{peer_s / command_s:.1f}×** faster, its parameters within "
        f"{rel_command:.2%} of the peer's. "
        f"Largest relative parameter difference: **{rel[worst]:.2%}** ({worst}); "
        + ", ".join(f"{k} {v:.2%}" for k, v in rel.items())
        + ". Besiroglu et al. report E = 1.82, A = 482.01, B = 2085.43, α = 0.3478, "
        "β = 0.3658.",
    ]
    write_section("peer_fit", "\n".join(lines))


if __name__ == "__main__":
    main()
