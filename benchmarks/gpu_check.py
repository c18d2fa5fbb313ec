"""The GPU check: everything scalelab does on CUDA, measured in one run of a few minutes.

Run it through benchmarks/gpu_check.sh (which installs missing dependencies from
benchmarks/wheels first). Sections, each timed, each a failure of its own if it raises:
1. mfu: train-step MFU of B-6/Wi-1024 and B-12/Wi-1024 at batch 16384 in TF32 and in bf16,
   each against the same run's matmul rate in that precision (bench_train.bench_model), and
   B-12/Wi-1024 bf16 once more under torch.compile. Target: B-12/Wi-1024 bf16 ≥ 40%.
2. worker: a real job end to end on the device: a synthetic 64×64 grid enqueued into a SQLite
   file, `scalelab run-worker --until-empty` claims, trains, checkpoints at every T, probes
   and records; the database is then read back.
3. loader: the array loader with augmentation (crops, flips, MixUp) on the device, images/s
   against what training B-12/Wi-1024 in bf16 consumes (section 1). Target: ≥ 1.5×.
4. probes: ridge and lion on device features against the same probes on the CPU.
`--quick` shrinks every size so that `--device cpu --quick` runs in seconds (the test that
keeps this script from rotting); its figures mean nothing.

Usage: python benchmarks/gpu_check.py [--device cuda] [--quick] [--out DIR]
       → DIR/gpu_check.md and DIR/gpu_check.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_loader import loader_rate, prepared_folder
from bench_probe import ON_FEATURES, structured_features
from bench_train import bench_model, matmul_probe
from common import machine

ROOT = Path(__file__).resolve().parents[1]
MFU_TARGET = 0.40  # B-12/Wi-1024 in bf16, of the bf16 matmul rate
LOADER_TARGET = 1.5  # loader images/s ÷ training consumption
DTYPES = {"tf32": torch.float32, "bf16": torch.bfloat16}


def sizes(quick: bool, device: torch.device) -> dict:
    if quick:
        return dict(
            models=["B-2/Wi-128"],
            batch=64,
            repeats=2,
            matmul=512,
            compile=False,
            loader_images=512,
            loader_batch=128,
            loader_batches=2,
            probe=(5_000, 1_000, 64, 10),
            worker_model="B-1/Wi-64",
            worker_examples=512,
            worker_batch=128,
            probe_examples=(1000, 500),
        )
    return dict(
        models=["B-6/Wi-1024", "B-12/Wi-1024"],
        batch=16384,
        repeats=7,
        matmul=8192,
        compile=device.type == "cuda",
        loader_images=65536,
        loader_batch=16384,
        loader_batches=4,
        probe=(50_000, 10_000, 1_024, 100),
        worker_model="B-6/Wi-1024",
        worker_examples=65536,
        worker_batch=16384,
        probe_examples=(10_000, 5_000),
    )


def check_mfu(device: torch.device, s: dict) -> dict:
    rows = []
    for precision in ("tf32", "bf16"):
        matmul = matmul_probe(device, DTYPES[precision], s["matmul"])
        for name in s["models"]:
            row = bench_model(name, device, s["batch"], s["repeats"], matmul, False, precision)
            rows.append(vars(row) | {"precision": precision, "compile": False})
            print(f"  {name} {precision}: {row.images_per_s:,.0f} images/s, MFU {row.mfu:.0%}")
    return {"rows": rows}


def check_compile(device: torch.device, s: dict) -> dict:
    """The largest model in bf16 once more under torch.compile (a section of its own: a
    compiler that fails here must not take the eager figures with it)."""
    name = s["models"][-1]
    matmul = matmul_probe(device, torch.bfloat16, s["matmul"])
    row = bench_model(name, device, s["batch"], s["repeats"], matmul, True, "bf16")
    print(f"  {name} bf16 compiled: {row.images_per_s:,.0f} images/s, MFU {row.mfu:.0%}")
    return {"rows": [vars(row) | {"precision": "bf16", "compile": True}]}


GRID = """\
name = "gpu-check"
dataset = "synthetic"
resolution = 64
models = ["{model}"]
examples = [{examples}]
epochs = [1, 2]
seeds = [0]

[train]
batch_size = {batch}
precision = "bf16"
heldout_examples = 1000

[probe]
targets = ["synthetic-cifar10"]
method = "ridge"
settings = {{ train_examples = {probe_train}, test_examples = {probe_test} }}
"""


def check_worker(device: torch.device, s: dict) -> dict:
    """Enqueue and run a real job through the CLI, then read the database back."""
    from scalelab import load_runs

    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.toml"
        probe_train, probe_test = s["probe_examples"]
        grid.write_text(
            GRID.format(
                model=s["worker_model"],
                examples=s["worker_examples"],
                batch=s["worker_batch"],
                probe_train=probe_train,
                probe_test=probe_test,
            )
        )
        db = Path(tmp) / "runs.db"
        cli = [sys.executable, "-m", "scalelab.cli"]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        subprocess.run(
            [*cli, "enqueue", str(grid), "--db", str(db)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        start = time.perf_counter()
        worker = subprocess.run(
            [
                *cli,
                "run-worker",
                "--until-empty",
                "--device",
                str(device),
                "--db",
                str(db),
                "--workdir",
                f"{tmp}/work",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        if worker.returncode != 0:
            raise RuntimeError(f"run-worker exited {worker.returncode}: {worker.stderr[-2000:]}")
        runs = load_runs(str(db))
        checkpoints = sorted(Path(f"{tmp}/work").rglob("*.pt"))
    targets = sorted(set(runs["target"]))
    probed = runs[runs["target"] == "synthetic-cifar10"]
    if sorted(probed["epochs"]) != [1.0, 2.0] or not np.isfinite(probed["error"]).all():
        raise RuntimeError(f"expected probe errors at T = 1 and 2, got:\n{runs.to_string()}")
    return {
        "model": s["worker_model"],
        "examples": s["worker_examples"],
        "batch": s["worker_batch"],
        "seconds": seconds,
        "checkpoint_files": len(checkpoints),
        "targets": targets,
        "probe_errors": [float(e) for e in probed.sort_values("epochs")["error"]],
    }


def check_loader(device: torch.device, s: dict, consumption: float | None) -> dict:
    import scalelab.data.loaders as loaders
    from scalelab.data import TrainAugment
    from scalelab.data.loaders import make_loader
    from scalelab.data.sources import open_split

    with tempfile.TemporaryDirectory() as tmp:
        folder = prepared_folder(Path(tmp), s["loader_images"])
        source = open_split(folder, "train", "bench", "scalelab prepare ...")
        augment = TrainAugment(1000, source.mean, source.std, 64)
        rates = {}
        for where, limit in (("in memory", loaders.IN_MEMORY_BYTES), ("memmap", 0)):
            loaders.IN_MEMORY_BYTES = limit  # 0: stream from the memmap, as beyond RAM
            loader = make_loader(
                source,
                np.arange(s["loader_images"]),
                s["loader_batch"],
                device,
                shuffle=True,
                seed=0,
                drop_last=True,
                backend="array",
            )
            rates[where] = loader_rate(loader, augment, s["loader_batches"], 2, device)
        loaders.IN_MEMORY_BYTES = 2 << 30
    return {
        "images_per_s": rates,
        "consumption": consumption,
        "ratio": {k: v / consumption for k, v in rates.items()} if consumption else None,
    }


def check_probes(device: torch.device, s: dict) -> dict:
    from scalelab.probe import run_probe

    n_train, n_test, dim, classes = s["probe"]
    x, y = structured_features(n_train + n_test, dim, classes, seed=0)
    out = {}
    for method in ("ridge", "lion"):
        for where in dict.fromkeys([str(device), "cpu"]):
            data = [t.to(where) for t in (x[:n_train], y[:n_train], x[n_train:], y[n_train:])]
            settings = ON_FEATURES.get(method)
            # Kernels loaded before the timing: one batch of 4,096 (lion's), one lion epoch.
            warm = (settings or {}) | ({"epochs": 1} if method == "lion" else {})
            run_probe(*(t[:4096] for t in data), classes, method, warm)
            start = time.perf_counter()
            result = run_probe(*data, classes, method, settings, seed=0)
            seconds = time.perf_counter() - start
            out[f"{method} {where}"] = {"seconds": seconds, "error": result.error}
            print(f"  {method} on {where}: error {result.error:.4f} in {seconds:.2f} s")
    return out


def run_section(name: str, fn: Callable[[], dict], results: dict) -> None:
    print(f"── {name}", flush=True)
    start = time.perf_counter()
    try:
        results[name] = fn() | {"ok": True}
    except Exception as exc:  # a failed section is reported; the others still run
        traceback.print_exc()
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    results[name]["section_seconds"] = time.perf_counter() - start


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"## GPU check ({meta['device']})",
        "",
        f"Run on {meta['date']} by `benchmarks/gpu_check.sh{meta['flags']}`: {meta['machine']}; "
        f"torch {meta['torch']}; {meta['total_seconds']:.0f} s in all."
        + (" `--quick`: small sizes, figures meaningless." if meta["quick"] else ""),
        "",
    ]
    mfu = {
        "ok": True,
        "rows": [r for k in ("mfu", "compile") for r in results.get(k, {}).get("rows", [])],
    }
    if mfu["rows"]:
        lines += [
            "| model | precision | images/s | achieved TFLOP/s | matmul TFLOP/s (same "
            "precision) | MFU |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in mfu["rows"]:
            lines.append(
                f"| {r['model']} | {r['precision']}{' + compile' if r['compile'] else ''} | "
                f"{r['images_per_s']:,.0f} | {r['achieved'] / 1e12:.1f} | "
                f"{r['matmul'] / 1e12:.1f} | {r['mfu']:.0%} |"
            )
        lines.append("")
    worker = results.get("worker", {})
    if worker.get("ok"):
        errors = ", ".join(f"{e:.4f}" for e in worker["probe_errors"])
        lines += [
            f"Worker job end to end: {worker['model']}, N = {worker['examples']:,}, T = 1, 2, "
            f"batch {worker['batch']:,}, bf16, synthetic 64×64 into SQLite: claimed, trained, "
            f"{worker['checkpoint_files']} checkpoint files, ridge probe errors {errors} on "
            f"synthetic-cifar10, recorded; {worker['seconds']:.1f} s for `run-worker`.",
            "",
        ]
    loader = results.get("loader", {})
    if loader.get("ok"):
        lines += [
            "| array loader + augmentation on the device | images/s | × consumption |",
            "|---|---:|---:|",
        ]
        for where, rate in loader["images_per_s"].items():
            ratio = loader["ratio"][where] if loader["ratio"] else float("nan")
            lines.append(f"| {where} | {rate:,.0f} | {ratio:.2f}× |")
        lines += [
            "",
            f"Consumption: {loader['consumption'] or float('nan'):,.0f} images/s (the last "
            "model in bf16 above).",
            "",
        ]
    probes = results.get("probes", {})
    if probes.get("ok"):
        lines += ["| probe | where | seconds | test error |", "|---|---|---:|---:|"]
        for key, value in probes.items():
            if isinstance(value, dict):
                method, where = key.split(" ", 1)
                lines.append(
                    f"| {method} | {where} | {value['seconds']:.2f} | {value['error']:.4f} |"
                )
        lines.append("")
    took = ", ".join(
        f"{k} {v['section_seconds']:.0f} s" for k, v in results.items() if "section_seconds" in v
    )
    lines += [f"Sections: {took}.", "", *[f"- {t}" for t in results["targets"]]]
    return "\n".join(lines)


def targets(results: dict, quick: bool) -> list[str]:
    out = []
    rows = [r for k in ("mfu", "compile") for r in results.get(k, {}).get("rows", [])]
    b12 = [r for r in rows if r["model"] == "B-12/Wi-1024" and r["precision"] == "bf16"]
    if b12:
        best = max(r["mfu"] for r in b12)
        verdict = "PASS" if best >= MFU_TARGET else "FAIL"
        out.append(f"{verdict}: B-12/Wi-1024 bf16 MFU {best:.0%} (target ≥ {MFU_TARGET:.0%})")
    ratio = results.get("loader", {}).get("ratio")
    if ratio:
        worst = min(ratio.values())
        verdict = "PASS" if worst >= LOADER_TARGET else "FAIL"
        out.append(
            f"{verdict}: array loader {worst:.2f}× training consumption "
            f"(target ≥ {LOADER_TARGET}×; slowest of in memory / memmap)"
        )
    if quick:
        out.append("(--quick: targets not judged on these sizes)")
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("ok") is False]
    out += [f"ERROR in {k}: {results[k]['error'].splitlines()[0]}" for k in failed]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible; run with --device cpu to try it")
    s = sizes(args.quick, device)
    where_run = machine()  # before any section changes the thread count
    start = time.perf_counter()
    results: dict = {}
    run_section("mfu", lambda: check_mfu(device, s), results)
    consumption = None
    for r in results["mfu"].get("rows", []):
        if r["model"] == s["models"][-1] and r["precision"] == "bf16" and not r["compile"]:
            consumption = r["images_per_s"]
    if s["compile"]:
        run_section("compile", lambda: check_compile(device, s), results)
    run_section("worker", lambda: check_worker(device, s), results)
    run_section("loader", lambda: check_loader(device, s, consumption), results)
    run_section("probes", lambda: check_probes(device, s), results)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    results["meta"] = {
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "device": where,
        "machine": where_run,
        "torch": torch.__version__,
        "quick": args.quick,
        "flags": f" --device {args.device}" + (" --quick" if args.quick else ""),
        "total_seconds": time.perf_counter() - start,
    }
    results["targets"] = targets(results, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    (args.out / "gpu_check.md").write_text(text + "\n")
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=float))
    print(textwrap.indent(text, "  "))
    print(f"wrote {args.out}/gpu_check.md and gpu_check.json")
    if any(v.get("ok") is False for v in results.values() if isinstance(v, dict)):
        sys.exit(1)


if __name__ == "__main__":
    main()
