"""Fit benchmark: `scalelab fit` on synthetic imported-like points with 1,000 bootstrap resamples.

Times (median over repeats) for 250, 500, 1,000 and 2,000 points:
- A: frontier, compute law, bottleneck laws E(P), E(N) and allocation, with their intervals
  (target < 10 s at 2,000 points on 2 cores);
- B: the parametric fit E(P, N) with its intervals (target < 60 s).
Baseline measured in the same run: the same resamples fitted without warm starts and with
numerical (finite-difference) gradients, per resample, on fewer resamples (it is slow); the
ratio is baseline / ours per resample, what warm starts and analytic gradients buy.

Usage: python benchmarks/bench_fit.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import machine, write_section

from scalelab.analysis import fit_scaling
from scalelab.analysis.points import PointArrays, select_points
from scalelab.analysis.report import analyse, choose_epochs
from scalelab.analysis.synthetic import synthetic_runs

MAIN = ("compute_law", "params_law", "examples_law", "allocation")
PARAMETRIC = ("parametric",)
# points = model sizes x dataset sizes x 2 seeds x 5 epochs
SIZES = {250: (5, 5), 500: (5, 10), 1000: (10, 10), 2000: (10, 20)}


def dataset(n_points: int) -> PointArrays:
    n_models, n_sizes = SIZES[n_points]
    df = synthetic_runs(
        params=np.geomspace(1e6, 1e8, n_models),
        examples=np.geomspace(1e4, 1e7, n_sizes),
        epochs=(50, 100, 200, 400, 800),
        seeds=(0, 1),
        noise=0.02,
    )
    assert len(df) == n_points
    return PointArrays.from_points(select_points(df, "synthetic"))


def seconds(data: PointArrays, parts: tuple[str, ...], resamples: int, repeats: int, **kw) -> float:
    epochs = choose_epochs(data.epochs, None)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        analysis = analyse(data, epochs, parts=parts, resamples=resamples, seed=0, **kw)
        times.append(time.perf_counter() - start)
        failed = [p for p in parts if analysis.fits[p] is None]
        assert not failed, f"{failed} could not be fitted: {analysis.notes}"
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, fewer baseline resamples")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    resamples = 1000
    baseline_resamples = {"main": 20 if args.quick else 50, "parametric": 3 if args.quick else 10}

    rows = []
    for n_points in SIZES:
        data = dataset(n_points)
        ours_a = seconds(data, MAIN, resamples, repeats)
        ours_b = seconds(data, PARAMETRIC, resamples, repeats)
        cold = {"warm_start": False, "analytic_gradients": False}
        base_a = seconds(data, MAIN, baseline_resamples["main"], 1, **cold)
        base_b = seconds(data, PARAMETRIC, baseline_resamples["parametric"], 1, **cold)
        # Per resample: subtract the full-data fit (0 resamples) so that only resamples count.
        full_a = seconds(data, MAIN, 0, repeats)
        full_b = seconds(data, PARAMETRIC, 0, repeats)
        per = {
            "ours_a": (ours_a - full_a) / resamples,
            "ours_b": (ours_b - full_b) / resamples,
            "base_a": (base_a - seconds(data, MAIN, 0, 1, **cold)) / baseline_resamples["main"],
            "base_b": (base_b - seconds(data, PARAMETRIC, 0, 1, **cold))
            / baseline_resamples["parametric"],
        }
        rows.append((n_points, ours_a, ours_b, per))
        per_ms = {k: f"{v * 1e3:.2f}ms" for k, v in per.items()}
        print(f"{n_points} points: A {ours_a:.2f}s, B {ours_b:.2f}s, per resample {per_ms}")

    df = synthetic_runs(
        params=np.geomspace(1e6, 1e8, 10),
        examples=np.geomspace(1e4, 1e7, 20),
        epochs=(50, 100, 200, 400, 800),
        seeds=(0, 1),
        noise=0.02,
    )
    start = time.perf_counter()
    fit_scaling(df, "synthetic", bootstrap=resamples)
    total = time.perf_counter() - start

    lines = [
        "## Scaling-law fits: `scalelab fit` with 1,000 bootstrap resamples",
        "",
        f"Machine: {machine()}. Synthetic imported-like points (model sizes x dataset sizes x "
        "2 seeds x 5 epochs, 2% log-normal noise), bootstrap over runs, one BLAS thread. "
        f"Median of {repeats} repeat(s).",
        "",
        "A = frontier + compute law + E(P) + E(N) + allocation, each with its 95% interval; "
        "B = parametric E(P, N) (Approach 3) with its intervals. Per-resample times exclude the "
        "full-data fit. Baseline = the same resamples fitted cold (multi-start, no warm start) "
        "with finite-difference gradients, measured on "
        f"{baseline_resamples['main']} (A) and {baseline_resamples['parametric']} (B) resamples.",
        "",
        "| points | A total (s) | B total (s) | A per resample (ms) | A baseline (ms) | A ratio "
        "| B per resample (ms) | B baseline (ms) | B ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n_points, ours_a, ours_b, per in rows:
        lines.append(
            f"| {n_points:,} | {ours_a:.2f} | {ours_b:.2f} | {per['ours_a'] * 1e3:.2f} | "
            f"{per['base_a'] * 1e3:.2f} | {per['base_a'] / per['ours_a']:.1f}x | "
            f"{per['ours_b'] * 1e3:.2f} | {per['base_b'] * 1e3:.1f} | "
            f"{per['base_b'] / per['ours_b']:.0f}x |"
        )
    growth_a = rows[-1][1] / rows[0][1]
    growth_b = rows[-1][2] / rows[0][2]
    lines += [
        "",
        f"Growth from {rows[0][0]:,} to {rows[-1][0]:,} points ({rows[-1][0] // rows[0][0]}x): "
        f"A x{growth_a:.2f}, B x{growth_b:.2f}. The whole `fit_scaling` (all parts, hold-out, "
        f"JSON) at 2,000 points: {total:.1f} s.",
        "",
        "Targets: A < 10 s and B < 60 s at 2,000 points on these 2 cores.",
    ]
    write_section("fit", "\n".join(lines))


if __name__ == "__main__":
    main()
