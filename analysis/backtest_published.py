"""How far a law can be trusted, measured on published scaling data (tests/data): Approach 2's
exponents per IsoFLOP source, and `scalelab backtest` on every data set, into docs/.

Run:      .venv/bin/python analysis/backtest_published.py --out docs --bootstrap 200
Expected: docs/backtest.md (two tables) and docs/backtest-chinchilla.png, in about a minute.
          Chinchilla's Approach 2 gives P* ∝ C^0.54 on Epoch AI's extraction (published
          0.49); the compute law extrapolates 0.8 decades with about 1% error.

The data go through `scalelab import` (the NMT curves and the Chinchilla runs) or straight
into `scalelab.analysis` as a load_runs frame (the IsoFLOP runs), with the converters the tests
use (tests/published_data.py), so these tables are made from exactly what the tests check.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd

from scalelab.analysis import fit_scaling
from scalelab.analysis.backtest import backtest, backtest_from_db
from scalelab.analysis.table import LAW_NAMES
from scalelab.store.engine import open_engine
from scalelab.store.transfer import import_runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from published_data import (  # noqa: E402 - the tests' converters, found through sys.path
    ISOFLOPS,
    isoflop_runs,
    write_chinchilla_import,
    write_nmt_import,
)


def ci(interval: list[float] | None, scale: float = 1.0, unit: str = "") -> str:
    if interval is None:
        return "—"
    return f"[{scale * interval[0]:.3g}{unit}, {scale * interval[1]:.3g}{unit}]"


def approach2_table(bootstrap: int) -> list[str]:
    rows = pd.read_csv(ISOFLOPS)
    lines = [
        "| source (rows not flagged) | budgets | P* ∝ C^a | 95% interval | N* ∝ C^b "
        "| 95% interval |",
        "|---|---|---|---|---|---|",
    ]
    for experiment in sorted(rows["experiment"].unique()):
        clean = rows[(rows["experiment"] == experiment) & ~rows["outlier"]]
        two = fit_scaling(isoflop_runs(clean), "loss", bootstrap=bootstrap)["approach2"]
        lines.append(
            f"| {experiment} | {two['n_profiles']} | {two['params_exponent']:.3f} | "
            f"{ci(two['params_exponent_ci'])} | {two['examples_exponent']:.3f} | "
            f"{ci(two['examples_exponent_ci'])} |"
        )
    return lines


def backtest_rows(name: str, result: dict) -> list[str]:
    lines = []
    for row in result["laws"]:
        if row.get("note"):
            continue
        lines.append(
            f"| {name} | {LAW_NAMES[row['law']]} | {row['quantity']} | {row['n_heldout']} | "
            f"{100 * row['relative_error']:.2f}% | {ci(row['relative_error_ci'], 100, '%')} | "
            f"{row['rms_log_error']:.3g} | {ci(row['rms_log_error_ci'])} | "
            f"{row['decades']:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    out = Path(args.out)
    lines = [
        "# What extrapolation error to expect",
        "",
        "Written by `analysis/backtest_published.py` from the published data in `tests/data/`",
        f"({args.bootstrap} bootstrap resamples). See the README's *How far can a law be "
        "trusted?*.",
        "",
        "## Approach 2 on five published IsoFLOP studies",
        "",
        *approach2_table(args.bootstrap),
        "",
        "Published: Chinchilla (Hoffmann et al. 2022, Table 2) a = 0.49 (0.462, 0.534), "
        "b = 0.51; Llama 3 (Dubey et al. 2024) tokens ∝ C^0.53. Why the Apple-scalefit "
        "Chinchilla and Llama 3 rows differ: the file's quality flags remove their largest "
        "budgets (tests/test_approach2.py).",
        "",
        "## Backtests: every law fitted below a compute cut, scored above it",
        "",
        "| data | law | predicts | held out | relative error | 95% interval | RMS log error "
        "| 95% interval | decades |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, writer, options in (
            ("Chinchilla (Epoch AI), C > 1e21", write_chinchilla_import, {"holdout_above": 1e21}),
            ("NMT curves (RNSL), flagged", write_nmt_import, {"holdout_top": 1}),
        ):
            db = str(Path(tmp) / f"{writer.__name__}.db")
            csv = writer(Path(tmp) / f"{writer.__name__}.csv")
            open_engine(db)  # creates the database, which import_runs expects
            import_runs(db, csv)
            target = "chinchilla" if "Chinchilla" in name else "nmt"
            figure = out / "backtest-chinchilla.png" if target == "chinchilla" else None
            result = backtest_from_db(
                db, target, figure=figure, bootstrap=args.bootstrap, **options
            )
            lines += backtest_rows(name, result)
    rows = pd.read_csv(ISOFLOPS)
    for experiment in sorted(rows["experiment"].unique()):
        clean = rows[(rows["experiment"] == experiment) & ~rows["outlier"]]
        result = backtest(isoflop_runs(clean), "loss", holdout_top=1, bootstrap=args.bootstrap)
        lines += backtest_rows(f"{experiment}, top budget", result)
    lines += [
        "",
        "Decades: log10 of the largest held-out compute over the largest fitted one. The "
        "NMT hold-out (`--holdout-top 1`) is exactly the benchmark's own `Training = 0` rows.",
    ]
    (out / "backtest.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'backtest.md'} and {out / 'backtest-chinchilla.png'}")


if __name__ == "__main__":
    main()
