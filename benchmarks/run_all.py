"""`make bench`: run every benchmarks/bench_*.py and rewrite BENCHMARKS.md from their results.

Each benchmark measures its value and a baseline in the same run (this machine is shared and
noisy: ratios mean more than absolute times) and writes benchmarks/results/<name>.md.
Usage: python benchmarks/run_all.py [--quick] [--only NAME ...] [--assemble]
(--assemble: only rewrite BENCHMARKS.md from the results already there)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from common import RESULTS, machine

HERE = Path(__file__).resolve().parent
# The order of the sections in BENCHMARKS.md.
ORDER = ["train", "loader", "synthetic", "probe", "fit", "queue"]
ORDER += ["peer_fit", "peer_queue", "peer_probe", "peer_train"]  # against other tools
GPU = RESULTS / "gpu"  # benchmarks/gpu_check.sh's default --out
NO_GPU = """## GPU check

No GPU was available in the task that wrote `benchmarks/gpu_check.sh` (issue 17, 2026-12-02),
so none of its figures exist yet. On a GPU machine (it is sized for one H200 and at most
8 minutes; Python 3.12 with torch), hand over the tree with the wheels scalelab needs beyond
torch and run it:

```
benchmarks/fill_wheels.sh            # here, with network: cp312 wheels of sqlalchemy, alembic
benchmarks/gpu_check.sh              # there: installs them offline, then measures
python benchmarks/run_all.py --assemble   # puts benchmarks/results/gpu/gpu_check.md here
```

It measures the train-step MFU of B-6/Wi-1024 and B-12/Wi-1024 at batch 16384 in TF32 and
bf16 against the same run's matmul rate in that precision (and B-12/Wi-1024 bf16 under
`torch.compile`), a worker job end to end on CUDA against SQLite (claim, train, checkpoint,
probe, record), the array loader with augmentation on the device against training
consumption, and the ridge and lion probes on CUDA. Targets: B-12/Wi-1024 ≥ 40% of the bf16
matmul rate; the loader ≥ 1.5× what training consumes. `tests/test_gpu_check.py` runs it
with `--device cpu --quick` so that it cannot rot."""


def gpu_section() -> str:
    """The GPU check's figures when a full run left them, else how to obtain them."""
    report, data = GPU / "gpu_check.md", GPU / "gpu_check.json"
    if report.exists() and data.exists() and not json.loads(data.read_text())["meta"]["quick"]:
        return report.read_text().strip()
    return NO_GPU


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (e.g. queue fit)")
    parser.add_argument("--assemble", action="store_true", help="run nothing, only rewrite")
    args = parser.parse_args()
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for name in [] if args.assemble else names:
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
    body += "\n\n" + gpu_section()
    (HERE.parent / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\n"
        f"Assembled by `make bench` on {dt.date.today():%Y-%m-%d}. Machine: {machine()}.\n"
        "Each section is rewritten by the benchmark that measures it and names its machine "
        "and load. Every figure is reported beside a baseline or a peer tool measured in the "
        "same run, and the ratio of the two; medians over repeats where the section says "
        "so.\n\n" + body + "\n"
    )
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
