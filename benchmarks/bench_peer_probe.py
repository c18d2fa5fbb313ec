"""Peer benchmark, probes: scalelab's ridge and logreg against scikit-learn's, same features.

Features: benchmarks/bench_probe.py's structured features, 50,000 × 1,024 (test 10,000),
100 classes, float32. Each side standardises the features with the training split's
statistics; the penalties are translated so that both minimise the same objective:
- ridge: scalelab `ridge` (one eigendecomposition, λ chosen from its 19 values on a held-out
  10%, refit on all) against `StandardScaler` + `RidgeClassifierCV(alphas = n·λ for the same
  19 λ)` (scikit-learn's efficient leave-one-out choice). scalelab minimises
  (1/n)·||XW − Y||² + λ·||W||², scikit-learn ||XW − Y||² + α·||W||², so α = n·λ; its ±1
  targets instead of one-hot scale W and do not change the argmax.
- logreg: one fit each at the same penalty, the one scalelab's `logreg` chooses from its 5
  (chosen in this run, not timed): scalelab `logreg` with that l2 (mean cross-entropy +
  l2·||W||², L-BFGS, 100 iterations) against `StandardScaler` + `LogisticRegression(lbfgs,
  C = 1 / (2·n·l2), max_iter=100)` (C·Σ cross-entropy + ½||W||², the same optimum).
Figures: wall seconds (ratio scikit-learn / scalelab) and test error (difference).

Usage: python benchmarks/bench_peer_probe.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
from bench_probe import structured_features
from common import machine, write_section
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier, RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from scalelab.probe import run_probe
from scalelab.probe.ridge import DEFAULT_PENALTIES

LOGREG_ITERATIONS = 100  # scalelab's logreg default max_iter


def timed(fn):  # -> (result, wall seconds)
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def sklearn_error(model, x_test: np.ndarray, y_test: np.ndarray) -> float:
    return float(np.mean(model.predict(x_test) != y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 × 256 features, 20 classes")
    args = parser.parse_args()
    if args.quick:
        n_train, n_test, dim, classes = 5_000, 2_000, 256, 20
    else:
        n_train, n_test, dim, classes = 50_000, 10_000, 1_024, 100
    x, y = structured_features(n_train + n_test, dim, classes, seed=0)
    data = (x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    xn, yn = x.numpy(), y.numpy()
    x_fit, y_fit, x_test, y_test = xn[:n_train], yn[:n_train], xn[n_train:], yn[n_train:]
    run_probe(*(part[:500] for part in data), classes)  # load the linear-algebra kernels
    load_before = os.getloadavg()[0]

    rows = []
    ours, ours_s = timed(lambda: run_probe(*data, classes, "ridge", seed=0))
    alphas = n_train * np.array(DEFAULT_PENALTIES)
    peer = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=alphas))
    _, peer_s = timed(lambda: peer.fit(x_fit, y_fit))
    peer_lambda = peer[-1].alpha_ / n_train
    rows.append(
        (
            "ridge",
            f"λ from {len(alphas)}: scalelab {ours.details['penalty']:.3g} (10% held "
            f"out), scikit-learn {peer_lambda:.3g} (leave-one-out)",
            ours_s,
            ours.error,
            peer_s,
            sklearn_error(peer, x_test, y_test),
        )
    )

    # The same λ on both sides (scalelab's choice): the error must agree, the time is one solve.
    lam = ours.details["penalty"]
    peer = make_pipeline(StandardScaler(), RidgeClassifier(alpha=n_train * lam))
    _, fixed_s = timed(lambda: peer.fit(x_fit, y_fit))
    rows.append(
        (
            "ridge, same λ",
            f"λ = {lam:.3g} (scalelab's choice) for scikit-learn's `RidgeClassifier`; scalelab's "
            "time as above (its 19 λ)",
            ours_s,
            ours.error,
            fixed_s,
            sklearn_error(peer, x_test, y_test),
        )
    )

    l2 = run_probe(*data, classes, "logreg", seed=0).details["l2_chosen"]
    settings = {"l2": l2, "max_iter": LOGREG_ITERATIONS}
    ours, ours_s = timed(lambda: run_probe(*data, classes, "logreg", settings, seed=0))
    peer = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=1 / (2 * n_train * l2), max_iter=LOGREG_ITERATIONS),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # both stop at 100 iterations
        _, peer_s = timed(lambda: peer.fit(x_fit, y_fit))
    rows.append(
        (
            "logreg",
            f"l2 = {l2:g} (scalelab's choice), L-BFGS, {LOGREG_ITERATIONS} iterations",
            ours_s,
            ours.error,
            peer_s,
            sklearn_error(peer, x_test, y_test),
        )
    )

    size = "`--quick`: small features, not the acceptance size. " if args.quick else ""
    lines = [
        "## Peer: linear probes against scikit-learn",
        "",
        f"{size}Machine: {machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after. Features {n_train:,} × {dim:,} (test {n_test:,}), "
        f"{classes} classes (bench_probe.py's structured features), standardised by each "
        "side; one run each, wall seconds including standardisation. Ridge: scalelab `ridge` "
        "against `RidgeClassifierCV` choosing from the same 19 penalties (α = n·λ). Logreg: "
        "one fit each at the l2 scalelab's `logreg` chose, `LogisticRegression(lbfgs, "
        "C = 1/(2·n·l2))`, the same objective. `RidgeClassifierCV` scores its λ by the "
        "leave-one-out squared error of its ±1 targets (its default), scalelab by the held-out "
        "classification error: the λ each chooses can differ, hence the same-λ row.",
        "",
        "| probe | settings | scalelab s | scikit-learn s | speed ratio (sklearn ÷ scalelab) "
        "| scalelab error | scikit-learn error | difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, settings_text, o_s, o_err, p_s, p_err in rows:
        lines.append(
            f"| {name} | {settings_text} | {o_s:.2f} | {p_s:.2f} | {p_s / o_s:.1f}× | "
            f"{o_err:.4f} | {p_err:.4f} | {o_err - p_err:+.4f} |"
        )
    lines += ["", f"torch threads {torch.get_num_threads()}; scikit-learn on NumPy's BLAS."]
    write_section("peer_probe", "\n".join(lines))


if __name__ == "__main__":
    main()
