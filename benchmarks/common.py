"""Shared by the benchmarks: machine description, medians, and writing a results section."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

# $SCALELAB_BENCH_RESULTS: elsewhere, for the tests that run benchmarks in --quick mode.
RESULTS = Path(os.environ.get("SCALELAB_BENCH_RESULTS") or Path(__file__).with_name("results"))


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of fn() over repeats (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_section(name: str, markdown: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)
