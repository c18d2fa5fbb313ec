"""Rebuild the paper's figures (Bachmann et al. 2023, Fig. 1, 6, 7, 8 and the batch-size
study) from a runs.db into plots/, using only scalelab's public API.

Run:      .venv/bin/python analysis/paper_figures.py --db runs.db --out plots
          (--sweep: the scaling sweep, default "paper"; --batch-sweep: the batch-size study,
          default "batch-size"; each figure reads its own sweep, never a pool of both)
Expected: plots/fig1_cifar100.png, fig6_cifar10_imagenet1k.png, fig7_cifar100.png,
          fig8_cifar100.png, batch-size_cifar100.png; a figure whose data is missing is
          reported and skipped. On the paper's sweep the legends read α ≈ 0.25 (CIFAR-100),
          α ≈ 0.12 / 0.35 (CIFAR-10 / ImageNet-1k), α_P ≈ 1, α_N ≈ 0.35, P* ∝ C^0.35, N* ∝ C^0.65.

Each figure is a function of the runs DataFrame and a fit dict and returns a matplotlib
Figure: restyle it (titles, limits, fonts) before saving, as fig1 below shows.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

import scalelab
from scalelab.analysis import fit_scaling
from scalelab.errors import FitError, ScalelabError
from scalelab.figures import batch_size_figure, fig1, fig6, fig7, fig8, save_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="results database (default ./runs.db)")
    parser.add_argument("--out", default="plots")
    parser.add_argument("--target", default="cifar100", help="target of Fig. 1, 7, 8")
    parser.add_argument("--pair", default="cifar10,imagenet1k", help="the two targets of Fig. 6")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for intervals")
    parser.add_argument("--sweep", default="paper", help="the scaling sweep (grids/paper.toml)")
    parser.add_argument("--batch-sweep", default="batch-size", help="the batch-size study")
    args = parser.parse_args()

    def runs_of(sweep):
        try:
            return scalelab.load_runs(args.db, sweeps=[sweep])
        except ScalelabError as exc:  # e.g. no batch-size study in this database
            print(f"no runs of sweep {sweep!r}: {exc}")
            return None

    runs = runs_of(args.sweep)
    batch_runs = runs_of(args.batch_sweep)
    if runs is None:
        raise SystemExit(1)
    fits = {}

    def fit(target):
        if target not in fits:
            try:
                fits[target] = fit_scaling(runs, target, bootstrap=args.bootstrap)
            except FitError as exc:  # draw the points anyway; the legend says the fit is missing
                print(f"no fit for {target}: {exc}")
                fits[target] = None
        return fits[target]

    pair = args.pair.split(",")
    t = args.target
    figures = {
        f"fig1_{t}": lambda: fig1(runs, fit(t), t),
        f"fig6_{'_'.join(pair)}": lambda: fig6(runs, {p: fit(p) for p in pair}, pair),
        f"fig7_{t}": lambda: fig7(runs, fit(t), t),
        f"fig8_{t}": lambda: fig8(runs, fit(t), t),
    }
    if batch_runs is not None:
        figures[f"batch-size_{t}"] = lambda: batch_size_figure(batch_runs, t)
    for name, draw in figures.items():
        try:
            figure = draw()
        except ScalelabError as exc:
            print(f"skipped {name}: {exc}")
            continue
        if name.startswith("fig1"):
            figure.axes[0].set_title(f"Scaling MLPs: {t} linear probe")  # restyle freely
        for path in save_figure(figure, args.out, name, ["png", "pdf"]):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
