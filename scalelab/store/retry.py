"""Retrying queue writes through transient database errors (a restart, a dropped connection).

A lost connection raises OperationalError or InterfaceError; SQLAlchemy then drops the dead
pooled connection, so the next try connects afresh. Every queue write is idempotent under its
claim token (see queue.py), so a write whose commit reached the server before the connection
dropped is safe to send again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")

FIRST_WAIT_S = 0.5
MAX_WAIT_S = 8.0


def is_transient(exc: BaseException) -> bool:
    """A database error worth another try: the server is away or the connection dropped."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def with_retries(
    what: str,
    write: Callable[[bool], T],
    *,
    give_up_s: float,
) -> T:
    """Call ``write(retried)`` until it returns, waiting 0.5 s, 1 s, 2 s, ... (at most 8 s)
    after each transient error; after ``give_up_s`` the last error is raised."""
    deadline = time.monotonic() + give_up_s
    wait, retried = FIRST_WAIT_S, False
    while True:
        try:
            return write(retried)
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + wait > deadline:
                raise
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(
                f"{what}: database unavailable ({exc.__class__.__name__}: {first_line}); "
                f"retrying in {wait:g} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(wait)
            wait, retried = min(wait * 2, MAX_WAIT_S), True
