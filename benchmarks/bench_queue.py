"""Queue benchmark: claims per second with 1/4/8 (and 32 on PostgreSQL) claimant processes,
and claim latency with 1,000, 10,000 and 100,000 jobs queued (it must stay flat).

Baselines measured in the same run: for throughput, the rate of the cheapest committed write
transaction on the same database (one single-row UPDATE per transaction, one process); for
latency, the latency with 1,000 jobs queued.

Usage: python benchmarks/bench_queue.py [--quick] [--no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import machine, write_section
from sqlalchemy import create_engine, insert, text

from scalelab.store.engine import open_engine, session_scope
from scalelab.store.queue import claim, complete
from scalelab.store.schema import Job, Sweep, utcnow

ROOT = Path(__file__).resolve().parents[1]
CLAIMANT = ROOT / "tests" / "queue_claimant.py"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def fill(db: str, n: int) -> None:
    """Bulk-insert n queued jobs (Core insert: 100k rows in seconds)."""
    engine = open_engine(db)
    now = utcnow()
    with session_scope(engine) as session:
        sweep = Sweep(name="bench", grid_text="", grid_hash=uuid.uuid4().hex, created_at=now)
        session.add(sweep)
        session.flush()
        rows = [
            dict(
                sweep_id=sweep.id,
                config={},
                config_hash=uuid.uuid4().hex,
                model="B-1/Wi-8",
                params=1,
                flops=1.0,
                examples=1,
                seed=0,
                epochs=[1],
                status="queued",
                attempts=0,
                max_attempts=3,
                claim_token=0,
                created_at=now,
            )
            for _ in range(n)
        ]
        for start in range(0, n, 10_000):
            session.execute(insert(Job), rows[start : start + 10_000])


def throughput(db: str, processes: int, jobs: int) -> float:
    """Claims (each completed) per second with `processes` claimant processes."""
    fill(db, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        start_at = time.time() + 3.0 + 0.2 * processes
        procs = [
            subprocess.Popen(
                [sys.executable, str(CLAIMANT), db, f"{tmp}/c{i}", "--start-at", str(start_at)]
            )
            for i in range(processes)
        ]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"a claimant failed (exit {proc.returncode})")
        stamps = []
        for i in range(processes):
            stamps += [
                float(line.split()[2])
                for line in Path(f"{tmp}/c{i}").read_text().split("\n")
                if line
            ]
    if len(stamps) != jobs:
        raise SystemExit(f"claimed {len(stamps)} of {jobs} jobs")
    return (jobs - 1) / (max(stamps) - min(stamps))  # first to last claim: no start-up skew


def raw_write_rate(db: str, n: int) -> float:
    """Baseline: committed single-row UPDATE transactions per second, one process."""
    engine = open_engine(db)
    start = time.perf_counter()
    for _ in range(n):
        with session_scope(engine) as session:
            session.execute(text("UPDATE sweeps SET source = source WHERE id = 1"))
    return n / (time.perf_counter() - start)


def latency(db: str, queued: int, samples: int) -> float:
    """Median seconds of claim + complete with `queued` jobs waiting."""
    fill(db, queued)
    engine = open_engine(db)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        lease = claim(engine, "bench")
        complete(engine, lease)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sqlite_db(tmp: str) -> str:
    return f"{tmp}/{uuid.uuid4().hex}.db"


def pg_db() -> str:
    name = f"scalelab_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    jobs = 200 if args.quick else 1000
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    lines = [
        "## Job queue: claims per second and claim latency",
        "",
        f"Machine: {machine()}. Each claim is claimed and completed (two transactions); "
        f"{jobs} jobs per run; processes start claiming at the same instant.",
        "",
        "| backend | claimants | claims/s | baseline: 1-process write txn/s | ratio |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            make = (lambda: sqlite_db(tmp)) if backend == "sqlite" else pg_db
            base_db = make()
            fill(base_db, 1)
            base = raw_write_rate(base_db, 300 if args.quick else 2000)
            counts = [1, 4, 8] + ([32] if backend == "postgresql" else [])
            for n in counts:
                rate = throughput(make(), n, jobs)
                lines.append(f"| {backend} | {n} | {rate:,.0f} | {base:,.0f} | {rate / base:.2f} |")
        lines += [
            "",
            "| backend | jobs queued | median claim+complete latency (ms) | "
            "baseline: latency at 1,000 queued (ms) | ratio |",
            "|---|---|---|---|---|",
        ]
        for backend in backends:
            make = (lambda: sqlite_db(tmp)) if backend == "sqlite" else pg_db
            base_latency = None
            for size in sizes:
                lat = latency(make(), size, 100 if args.quick else 300)
                base_latency = base_latency or lat
                lines.append(
                    f"| {backend} | {size:,} | {lat * 1e3:.2f} | {base_latency * 1e3:.2f} | "
                    f"{lat / base_latency:.2f} |"
                )
    lines += [
        "",
        "Target: ≥ 200 claims/s with 8 processes on SQLite; latency flat in the queue length "
        "(ratio ≈ 1); no 'database is locked' error (any would have failed a claimant).",
    ]
    write_section("queue", "\n".join(lines))


if __name__ == "__main__":
    main()
