"""Time and error of the `ridge`, `logreg` and `lion` probes on the same features.

The baseline is the paper's protocol (Appendix A.3: LION, lr 1e-5, 50 epochs); the question
a user asks is what ridge's speed costs in error. Features have real structure so errors are
neither 0 nor chance: class means on a 64-dimensional latent manifold plus latent noise,
mapped into 1,024 dimensions through a random GELU layer, plus isotropic noise.

Run: .venv/bin/python benchmarks/bench_probe.py [--quick]   → benchmarks/results/probe.md
(full size: ~2 s of ridge, then minutes each for logreg and lion on 2 idle cores)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from scalelab.probe import ProbeResult, run_probe

RESULTS = Path(__file__).parent / "results" / "probe.md"


def structured_features(
    n: int, dim: int, classes: int, seed: int, latent: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, latent, generator=g) * 0.2  # (K, r)
    lift = torch.randn(latent, dim, generator=g) / latent**0.5  # (r, D)
    y = torch.randint(0, classes, (n,), generator=g)
    z = means[y] + 0.5 * torch.randn(n, latent, generator=g)  # (n, r)
    x = torch.nn.functional.gelu(z @ lift) + 0.3 * torch.randn(n, dim, generator=g)  # (n, D)
    return x, y


@dataclass
class Timing:
    wall: float  # median wall seconds
    cpu: float  # median process CPU seconds, all threads: what the run costs on idle cores
    result: ProbeResult


# On features there are no images to augment: the lion probe runs on the features as given.
ON_FEATURES = {"lion": {"augment": False}}


def timed(method: str, data: tuple, classes: int, repeats: int) -> Timing:
    runs: list[ProbeResult] = []
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        runs.append(run_probe(*data, classes, method, ON_FEATURES.get(method), seed=0))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    errors = {r.error for r in runs}
    assert len(errors) == 1, f"{method} is not deterministic: {errors}"
    return Timing(statistics.median(walls), statistics.median(cpus), runs[0])


def describe(result: ProbeResult) -> str:
    d = result.details
    if result.method == "ridge":
        return f"λ={d['penalty']:.3g} chosen from {len(d['penalties'])} on 10% held out"
    if result.method == "logreg":
        return f"L-BFGS, l2={d['l2_chosen']:g} chosen from {len(d['l2'])} on 10% held out"
    return f"LION lr={d['lr']:g}, {d['epochs']} epochs, batch {d['batch_size']} (paper A.3)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small features, few repeats")
    args = parser.parse_args()
    # logreg and lion take minutes at full size: one run each; ridge is what users wait for.
    if args.quick:
        n_train, n_test, dim, classes, repeats = 5_000, 2_000, 256, 20, 3
    else:
        n_train, n_test, dim, classes, repeats = 50_000, 10_000, 1_024, 100, 5
    x, y = structured_features(n_train + n_test, dim, classes, seed=0)
    data = (x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    run_probe(*(part[:500] for part in data), classes)  # load the linear-algebra kernels

    timings = {
        "ridge": timed("ridge", data, classes, repeats),
        "logreg": timed("logreg", data, classes, 1),
        "lion": timed("lion", data, classes, 1),
    }
    lion, ridge = timings["lion"], timings["ridge"]
    threads = torch.get_num_threads()
    size = "`--quick`: small features, not the acceptance size. " if args.quick else ""
    lines = [
        "## Linear probes: ridge vs logreg vs the paper's LION protocol",
        "",
        f"{size}Features {n_train:,} × {dim:,} (test {n_test:,}), {classes} classes, float32 on "
        f"CPU ({threads} threads, load average {os.getloadavg()[0]:.1f} at the end). Wall and "
        f"CPU seconds are medians over {repeats} runs for ridge and one run for logreg and "
        "lion, each including standardisation and the test evaluation. CPU seconds / threads "
        "is the wall time on idle cores; wall time grows with the machine's other load.",
        "",
        "| method | settings | wall s | CPU s | speed-up vs lion (wall) | test error "
        "| error − lion |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for method, t in timings.items():
        lines.append(
            f"| {method} | {describe(t.result)} | {t.wall:.2f} | {t.cpu:.2f} | "
            f"{lion.wall / t.wall:.1f}× | {t.result.error:.4f} | "
            f"{t.result.error - lion.result.error:+.4f} |"
        )
    lines += [
        "",
        f"ridge: {ridge.wall:.2f} s wall, {ridge.cpu / threads:.2f} s of CPU per thread "
        f"(target < 5 s at full size); {lion.wall / ridge.wall:.0f}× faster than the paper's "
        f"protocol at an error of {ridge.result.error:.4f} against LION's "
        f"{lion.result.error:.4f} ({ridge.result.error - lion.result.error:+.4f}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
