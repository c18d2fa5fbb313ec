"""Who a result belongs to: the study (database identity) and the code that produced it."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from scalelab.errors import DatabaseError
from scalelab.store.engine import session_scope
from scalelab.store.schema import Study


def study_id(engine: Engine) -> str:
    """The UUID stored in the database when it was created (or upgraded to 0003)."""
    with session_scope(engine, write=False) as session:
        found = session.scalar(select(Study.id))
    if found is None:
        raise DatabaseError(
            "the database has no study identity (its study table is empty); "
            "run `scalelab db upgrade`, or copy the study again with `scalelab db copy`"
        )
    return found


def _git(*args: str) -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the scalelab source tree, "unknown" outside a git checkout."""
    out = _git("rev-parse", "--short=12", "HEAD")
    return out.strip() if out else "unknown"


@dataclass(frozen=True)
class CodeIdentity:
    scalelab_version: str
    git_commit: str
    git_dirty: bool  # uncommitted changes under the source tree: the commit alone is not the code


@lru_cache(maxsize=1)
def code_identity() -> CodeIdentity:
    from scalelab import __version__

    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return CodeIdentity(__version__, git_commit(), bool(status and status.strip()))


def checkpoint_provenance(study: str, job_id: int, config_hash: str) -> dict[str, Any]:
    """What a checkpoint file records about itself; resume needs every field to match."""
    return {"study": study, "job_id": int(job_id), "config_hash": config_hash} | asdict(
        code_identity()
    )
