"""Peer benchmark, queue: scalelab's claim/complete against Optuna's RDBStorage trial queue.

The same number of jobs is queued in each tool, then 1 or 8 real worker processes, lined up
to start at the same instant, take jobs until none is left:
- scalelab: `claim` then `complete` (tests/queue_claimant.py, as benchmarks/bench_queue.py);
- Optuna: `study.enqueue_trial` for every job beforehand, then in each worker `study.ask()`
  (which pops a WAITING trial) and `study.tell(trial, 0.0)`, a user's way of making
  Optuna's storage a job queue. An `ask()` that finds the queue empty creates a fresh trial
  (its number is ≥ the number of jobs): the worker fails it and stops.
Measured per tool, backend (SQLite file, PostgreSQL) and process count: claims per second
(first to last claim, each completed), duplicated claims (a job claimed more than once) and
crashed workers (non-zero exit; its error's last line is kept).

Usage: python benchmarks/bench_peer_queue.py [--quick] [--no-postgres]
       python benchmarks/bench_peer_queue.py --optuna-worker URL STUDY JOBS OUT START_AT
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_queue import CLAIMANT, fill, pg_db, sqlite_db
from common import machine, write_section

HERE = Path(__file__).resolve()
STUDY = "bench"


def optuna_worker(url: str, study_name: str, jobs: int, out: str, start_at: float) -> None:
    """One Optuna worker: ask/tell until ask() returns a trial that was not enqueued."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=optuna.storages.RDBStorage(url))
    while time.time() < start_at:
        time.sleep(0.001)
    with open(out, "w") as f:
        while True:
            trial = study.ask()
            if trial.number >= jobs:  # not an enqueued trial: the queue is empty
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return
            f.write(f"{trial.number} {time.time()}\n")
            f.flush()
            study.tell(trial, 0.0)


def optuna_fill(url: str, jobs: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=optuna.storages.RDBStorage(url))
    for job in range(jobs):
        study.enqueue_trial({"job": job})


@dataclass
class Outcome:
    claims: int  # claim lines written, duplicates included
    unique: int
    rate: float  # claims per second, first to last
    crashed: list[str]  # last error line of each crashed worker


def run_workers(commands: list[list[str]], outs: list[Path]) -> Outcome:
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    crashed = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            crashed.append(lines[-1] if lines else f"exit {proc.returncode}")
    ids, stamps = [], []
    for out in outs:
        for line in out.read_text().splitlines() if out.exists() else []:
            fields = line.split()
            ids.append(fields[0])
            stamps.append(float(fields[-1]))
    span = max(stamps) - min(stamps) if len(stamps) > 1 else float("nan")
    return Outcome(len(ids), len(set(ids)), (len(ids) - 1) / span, crashed)


def scalelab_run(url: str, processes: int, jobs: int, tmp: str) -> Outcome:
    fill(url, jobs)
    start_at = time.time() + 3.0 + 0.3 * processes
    outs = [Path(tmp) / f"s{i}" for i in range(processes)]
    cmds = [
        [sys.executable, str(CLAIMANT), url, str(out), "--start-at", str(start_at)] for out in outs
    ]
    return run_workers(cmds, outs)


def optuna_run(url: str, processes: int, jobs: int, tmp: str) -> Outcome:
    optuna_fill(url, jobs)
    start_at = time.time() + 4.0 + 0.5 * processes  # optuna's import takes longer
    outs = [Path(tmp) / f"o{i}" for i in range(processes)]
    cmds = [
        [
            sys.executable,
            str(HERE),
            "--optuna-worker",
            url,
            STUDY,
            str(jobs),
            str(out),
            str(start_at),
        ]
        for out in outs
    ]
    return run_workers(cmds, outs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 jobs instead of 300")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--optuna-worker", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.optuna_worker:
        url, study, jobs, out, start_at = args.optuna_worker
        optuna_worker(url, study, int(jobs), out, float(start_at))
        return
    jobs = 50 if args.quick else 300
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    load_before = os.getloadavg()[0]
    rows, errors = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for processes in (1, 8):
                result = {}
                for tool, run in (("scalelab", scalelab_run), ("optuna", optuna_run)):
                    url = sqlite_db(tmp) if backend == "sqlite" else pg_db()
                    if backend == "sqlite":
                        url = f"sqlite:///{url}"
                    with tempfile.TemporaryDirectory(dir=tmp) as outs:
                        result[tool] = run(url, processes, jobs, outs)
                    for line in result[tool].crashed:
                        errors.setdefault(line, []).append(f"{tool}/{backend}/{processes}")
                    print(f"{backend} {processes} {tool}: {result[tool]}", flush=True)
                rows.append((backend, processes, result["scalelab"], result["optuna"]))
    lines = [
        "## Peer: job queue against Optuna's RDBStorage",
        "",
        f"Machine: {machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after. {jobs} jobs queued per run, then 1 or 8 worker "
        "processes started at the same instant take them until none is left. scalelab: "
        "`claim` + `complete`. Optuna "
        "(`enqueue_trial` for every job, then `study.ask()` + `study.tell(trial, 0.0)` per "
        "job in each worker, RDBStorage on the same kind of database). Claims/s from the "
        "first to the last claim; a duplicated claim is a job claimed more than once; a "
        "crashed worker exited non-zero.",
        "",
        "| backend | processes | scalelab claims/s | Optuna claims/s | ratio | scalelab "
        "claimed / dup. / crashed | Optuna claimed / dup. / crashed |",
        "|---|---:|---:|---:|---:|---|---|",
    ]

    def summary(o: Outcome) -> str:
        return f"{o.unique}/{jobs} / {o.claims - o.unique} / {len(o.crashed)}"

    for backend, processes, ours, peer in rows:
        lines.append(
            f"| {backend} | {processes} | {ours.rate:,.0f} | {peer.rate:,.0f} | "
            f"{ours.rate / peer.rate:.1f}× | {summary(ours)} | {summary(peer)} |"
        )
    lines += ["", "Ratio = scalelab claims/s ÷ Optuna claims/s, measured in the same run."]
    if errors:
        lines += ["", "Errors that ended crashed workers (last line of their stderr):", ""]
        for line, where in errors.items():
            lines.append(f"- {', '.join(where)}: `{line[:200]}`")
    write_section("peer_queue", "\n".join(lines))


if __name__ == "__main__":
    main()
