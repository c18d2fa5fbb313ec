"""Checkpoints written atomically and read back safely.

A checkpoint is written to a temporary file in the same folder, fsynced and renamed over the
old one, so a worker killed mid-write (or a full disk) never leaves a truncated checkpoint
where the next worker will look. It is read with ``weights_only=True``: tensors and plain
Python values only, no pickled code.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch

from scalelab.errors import ScalelabError


class CheckpointError(ScalelabError):
    """A checkpoint cannot be written (full disk, permissions) or read."""


class DiskFull(CheckpointError):
    """No space left for a checkpoint: the job is handed back, not failed (it is not at fault)."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        # torch.save reports a failed write as a RuntimeError ("unexpected pos ..."), with
        # the file's OSError as its context.
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if not isinstance(cause, OSError):
            raise
        if cause.errno == errno.ENOSPC:
            raise DiskFull(
                f"disk full writing checkpoint {path}; free space (or use --workdir on another "
                "disk) and start the worker again"
            ) from None
        raise CheckpointError(f"cannot write checkpoint {path}: {cause.strerror}") from None


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
