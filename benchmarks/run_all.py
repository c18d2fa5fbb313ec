"""`make bench`: run every benchmarks/bench_*.py and rewrite BENCHMARKS.md from their results.

Each benchmark measures its value and a baseline in the same run (this machine is shared and
noisy: ratios mean more than absolute times) and writes benchmarks/results/<name>.md.
Usage: python benchmarks/run_all.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

from common import RESULTS, machine

HERE = Path(__file__).resolve().parent
# The order of the sections in BENCHMARKS.md.
ORDER = ["train", "loader", "synthetic", "probe", "fit", "queue"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (e.g. queue fit)")
    args = parser.parse_args()
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for name in names:
        if args.only and name not in args.only:
            continue
        print(f"── benchmark {name}", flush=True)
        cmd = [sys.executable, str(HERE / f"bench_{name}.py")] + (["--quick"] if args.quick else [])
        subprocess.run(cmd, cwd=HERE, check=True)
    sections = sorted(
        RESULTS.glob("*.md"),
        key=lambda p: (p.stem not in ORDER, ORDER.index(p.stem) if p.stem in ORDER else 0, p.stem),
    )
    body = "\n\n".join(p.read_text().strip() for p in sections)
    if not (RESULTS / "train_cuda.md").exists():
        body += (
            "\n\n## Training throughput on a GPU\n\nNot measured yet: no GPU machine was "
            "available where this file was written. On one, run `python benchmarks/"
            "bench_train.py --device cuda` (bf16 autocast, batch 16384; target MFU ≥ 40% on an "
            "H200) and then `make bench` again."
        )
    (HERE.parent / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\n"
        f"Written by `make bench` on {dt.date.today():%Y-%m-%d}. Machine: {machine()}.\n"
        "Every figure is a median over repeats, reported beside a baseline measured in the same "
        "run, and the ratio of the two.\n\n" + body + "\n"
    )
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
