"""Rows shared between writers (a process's provenance, a sweep) created by two at once.

Each is a select-then-insert under a unique constraint. On PostgreSQL two transactions can
both miss the row; unless they take turns, the second then dies on the constraint, which in
a worker sends a finished job back to the queue (this once made 8 workers run a job twice).
Each test holds the first transaction open at its commit until the second has started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from scalelab.grid import parse_grid
from scalelab.store.engine import open_engine, session_scope
from scalelab.store.results import provenance_id
from scalelab.store.schema import Job, Provenance, Sweep
from scalelab.store.sweeps import enqueue


def overlapping(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run both in threads: ``second`` starts while ``first`` has written but not committed."""
    first_at_commit, go_on = threading.Event(), threading.Event()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def hold_first(_session: Session) -> None:
        if threading.current_thread().name == "first":
            first_at_commit.set()
            go_on.wait(10)

    def keep(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                results[name] = fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
                errors.append(exc)
                first_at_commit.set()

        return run

    event.listen(Session, "before_commit", hold_first)
    try:
        a = threading.Thread(target=keep("first", first), name="first")
        a.start()
        assert first_at_commit.wait(10)
        b = threading.Thread(target=keep("second", second), name="second")
        b.start()
        time.sleep(0.5)  # the second reaches its lookup (or SQLite's writer lock) meanwhile
        go_on.set()
        a.join(30)
        b.join(30)
    finally:
        event.remove(Session, "before_commit", hold_first)
    assert not errors, errors
    return results["first"], results["second"]


def count(db: str, table: type) -> int:
    with session_scope(open_engine(db), write=False) as session:
        return session.scalar(select(func.count()).select_from(table))


def test_provenance_created_by_two_transactions_at_once_is_one_row(db_url: str) -> None:
    engine = open_engine(db_url)

    def record() -> int:
        with session_scope(engine) as session:
            return provenance_id(session, "cpu")

    first, second = overlapping(record, record)
    assert first == second
    assert count(db_url, Provenance) == 1


GRID = """\
name = "race"
dataset = "synthetic"
resolution = 16
models = ["B-1/Wi-16", "B-1/Wi-32"]
examples = [32, 64]
epochs = [1]
"""


def test_the_same_grid_enqueued_twice_at_once_is_added_once(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    grid = parse_grid(path)
    engine = open_engine(db_url)
    first, second = overlapping(lambda: enqueue(engine, grid), lambda: enqueue(engine, grid))
    assert (first.added, first.present) == (4, 0)
    assert (second.added, second.present) == (0, 4)
    assert count(db_url, Sweep) == 1 and count(db_url, Job) == 4
