"""Training throughput of the paper's MLPs and their model FLOP utilisation (MFU).

For B-6/Wi-256, B-6/Wi-512, B-6/Wi-1024 and B-12/Wi-1024 (64x64x3 input, 11,230-class
ImageNet-21k head, LION) we time full training steps (forward, backward, optimizer) of
scalelab.train.step.TrainStep on random batches and report images/s and achieved FLOP/s =
3·FLOP(f)·images/s. The baseline is this machine's dense matmul rate, measured in the same
run and interleaved with the steps so that both see the same load: a large square torch.mm
in the training dtype (float32 on CPU, bf16 on CUDA). Both count one multiply-accumulate as
one FLOP (the paper's convention), so MFU = achieved / matmul is apples to apples.

Run: .venv/bin/python benchmarks/bench_train.py [--quick] [--device cuda] [--compile]
     → benchmarks/results/train.md (train_cuda.md with --device cuda)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from common import machine, write_section

from scalelab.flops import model_cost
from scalelab.models import build_model
from scalelab.train.device import resolve_device
from scalelab.train.step import TrainStep, make_optimizer

MODELS = ["B-6/Wi-256", "B-6/Wi-512", "B-6/Wi-1024", "B-12/Wi-1024"]
CLASSES = 11230
RESOLUTION = 64


@dataclass
class Row:
    model: str
    params: int
    flops: int
    images_per_s: float
    achieved: float  # multiply-accumulates per second, forward + backward (3·FLOP(f) per image)
    matmul: float  # the same run's matmul rate, multiply-accumulates per second
    mfu: float  # median over repeats of achieved / matmul of that repeat


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_probe(device: torch.device, dtype: torch.dtype, n: int) -> Callable[[], float]:
    """A function that times one n x n x n matmul and returns multiply-accumulates per second.

    float32 on CUDA runs as TF32 (the flag TrainStep sets): the peak of the "tf32" precision.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    calls = 1 if device.type == "cpu" else 20  # one GPU matmul is too short to time alone

    def run() -> None:
        for _ in range(calls):
            torch.mm(a, b)

    run()
    return lambda: calls * n**3 / seconds(run, device)


def bench_model(
    name: str,
    device: torch.device,
    batch: int,
    repeats: int,
    matmul: Callable[[], float],
    compile: bool,
    precision: str,
) -> Row:
    cost = model_cost(name, CLASSES, RESOLUTION)
    torch.manual_seed(0)
    model = build_model(name, CLASSES, RESOLUTION).to(device)
    optimizer = make_optimizer(model, "lion", lr=1e-5, weight_decay=1e-3)  # paper A.4
    step = TrainStep(model, optimizer, device=device, compile=compile, precision=precision)
    x = torch.randn(batch, 3, RESOLUTION, RESOLUTION, device=device)
    y = torch.softmax(torch.randn(batch, CLASSES, device=device), dim=1)

    # Warm-up: a gradient-free forward pass (kernels, compile), then one full step (grads
    # and optimizer state are allocated on the first step; we time the steady state).
    with torch.no_grad():
        model(x)
    step(x, y)
    step_seconds, matmul_rates = [], []
    for _ in range(repeats):
        matmul_rates.append(matmul())
        step_seconds.append(seconds(lambda: step(x, y), device))
    work = 3 * cost.flops * batch  # multiply-accumulates per step (Eq. 4's factor 3)
    ratios = [work / s / rate for s, rate in zip(step_seconds, matmul_rates, strict=True)]
    median_step = statistics.median(step_seconds)
    return Row(
        model=name,
        params=cost.params,
        flops=cost.flops,
        images_per_s=batch / median_step,
        achieved=work / median_step,
        matmul=statistics.median(matmul_rates),
        mfu=statistics.median(ratios),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch", type=int, default=None, help="default 1024 CPU, 16384 CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]  # other processes on the CPUs distort both rates

    device = resolve_device(args.device)
    batch = args.batch or (1024 if device.type == "cpu" else 16384)
    repeats = 3 if args.quick else 7
    # The throughput measured is bf16's on CUDA (opt-in since training defaults to TF32).
    precision = "tf32" if device.type == "cpu" else "bf16"
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    matmul = matmul_probe(device, dtype, 4096 if device.type == "cpu" else 8192)

    rows = []
    for name in args.models:
        row = bench_model(name, device, batch, repeats, matmul, args.compile, precision)
        print(f"{name}: {row.images_per_s:,.0f} images/s, MFU {row.mfu:.0%}", flush=True)
        rows.append(row)

    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after the run"
    precision_text = "float32" if device.type == "cpu" else "bf16 autocast, TF32"
    where = machine() if device.type == "cpu" else torch.cuda.get_device_name(device)
    lines = [
        f"## Training throughput and model FLOP utilisation ({device.type})",
        "",
        f"Machine: {where}; {load}. Batch {batch}, 64×64×3 input, {CLASSES:,}-class head, LION, "
        f"{precision_text}{', torch.compile' if args.compile else ''}; medians over {repeats} "
        "steps after a warm-up. FLOPs in the paper's convention: one multiply-accumulate = "
        "one FLOP; a training step counts 3·FLOP(f) per image (Eq. 4). Baseline: a "
        f"{4096 if device.type == 'cpu' else 8192}² {str(dtype).removeprefix('torch.')} "
        "torch.mm timed before each step (same convention), so MFU = achieved / matmul.",
        "",
        "| model | params | FLOP(f) | images/s | achieved GFLOP/s | baseline: matmul GFLOP/s "
        "| MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.params / 1e6:.2f}M | {r.flops / 1e6:.2f}M | "
            f"{r.images_per_s:,.0f} | {r.achieved / 1e9:,.1f} | {r.matmul / 1e9:,.1f} | "
            f"{r.mfu:.0%} |"
        )
    target = "≥ 50% on CPU" if device.type == "cpu" else "≥ 40% on an H200 in bf16"
    lines += ["", f"Target: MFU {target} at batch ≥ 1024."]
    if device.type == "cuda":
        b12 = next((r for r in rows if r.model == "B-12/Wi-1024"), None)
        if b12 is not None:
            epoch = 12_000_000 / b12.images_per_s  # ImageNet-21k: ~12M training images
            lines.append(
                f"An ImageNet-21k epoch (~12M images) of B-12/Wi-1024 takes {epoch:.0f} s at "
                "this rate (the paper: ~450 s on an RTX A5000), data loading not included."
            )
    write_section("train" if device.type == "cpu" else "train_cuda", "\n".join(lines))


if __name__ == "__main__":
    main()
