"""Regenerate tests/data/old/*.db: results databases written by old scalelab code.

Run:      .venv/bin/python tests/make_old_databases.py [COMMIT]   (default d305bab)
Expected: tests/data/old/runs-0002.db and runs-0001.db, each well under 1 MB.

COMMIT is checked out in a temporary git worktree and its own CLI is run there (never this
tree's code): `scalelab enqueue` of a two-job grid, `scalelab run-worker` (real training,
probes, checkpoints, provenance), and `scalelab import` of a CSV generated from a known law (a
sweep that `fit` can fit). That file is runs-0002.db: d305bab is the last commit whose schema
head is 0002_fits_provenance.

No commit of this repository has 0001_initial as its head (0001 and 0002 landed together in
d36dfca), so runs-0001.db is a copy of that database taken down to 0001 by the same commit's
own alembic downgrade (run with foreign keys off, see below): the rows its worker and import
wrote, in the 0001 schema.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "data" / "old"
GRID = """
name = "old"
dataset = "synthetic"
resolution = 16
models = ["B-1/Wi-16", "B-1/Wi-32"]
examples = [96]
epochs = [1, 2]
seeds = [0]

[train]
batch_size = 32
lr = 1e-3
heldout_examples = 200

[probe]
targets = ["synthetic-cifar10"]
settings = { train_examples = 500, test_examples = 500 }
"""


def law_csv(path: Path) -> None:
    """Results of E = 0.1 + 5 P^-0.5 + 3 (N·T^0.5)^-0.3, 1% noise, C = 3·P·N·T."""
    rng = np.random.default_rng(0)
    lines = ["model,params,examples,epochs,target,error"]
    for p in (1e4, 3e4, 1e5, 3e5):
        for n in (1e3, 4e3, 16e3):
            for t in (1, 2, 4):
                error = (0.1 + 5 * p**-0.5 + 3 * (n * t**0.5) ** -0.3) * np.exp(
                    0.01 * rng.standard_normal()
                )
                lines.append(f"law-{p:g},{p:g},{n:g},{t},synthetic-cifar10,{error:.6f}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "d305bab"
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "code"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), commit],
                       check=True)  # fmt: skip
        try:
            env = {**os.environ, "PYTHONPATH": str(old), "SCALELAB_WORKERS_PER_HOST": "2"}

            def old_scalelab(*args: str) -> None:
                subprocess.run([sys.executable, "-m", "scalelab.cli", *args], cwd=tmp, env=env,
                               check=True)  # fmt: skip

            db = tmp / "runs.db"
            (tmp / "grid.toml").write_text(GRID)
            law_csv(tmp / "law.csv")
            old_scalelab("enqueue", "grid.toml", "--db", str(db))
            old_scalelab("run-worker", "--until-empty", "--device", "cpu", "--threads", "1",
                         "--db", str(db), "--workdir", str(tmp / "work"))  # fmt: skip
            old_scalelab("import", "law.csv", "--db", str(db))
            _vacuum(db, OUT / "runs-0002.db")
            shutil.copy(OUT / "runs-0002.db", tmp / "down.db")
            # On a plain engine (SQLite's default: foreign keys off): that commit's engine turns
            # them on, and its batch migration of checkpoints then cascades into the probes.
            downgrade = (
                "from alembic import command; from sqlalchemy import create_engine; "
                "from scalelab.store.migrate import alembic_config; "
                f"engine = create_engine('sqlite:///{tmp / 'down.db'}'); "
                "command.downgrade(alembic_config(engine), '0001_initial')"
            )
            subprocess.run([sys.executable, "-c", downgrade], cwd=tmp, env=env, check=True)
            _vacuum(tmp / "down.db", OUT / "runs-0001.db")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                           check=True)  # fmt: skip
    for path in sorted(OUT.glob("*.db")):
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} kB)")


def _vacuum(source: Path, target: Path) -> None:
    """One self-contained file (WAL checkpointed), as small as SQLite makes it."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute(f"VACUUM INTO '{target}'")
    with sqlite3.connect(target) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")


if __name__ == "__main__":
    main()
