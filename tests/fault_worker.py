"""A real `scalelab run-worker` process with one fault injected, for the fault tests.

Usage: python tests/fault_worker.py FAULT [run-worker options...]

FAULT is one of:
- ``skew=SECONDS``: the worker's own clock runs SECONDS ahead (negative: behind);
- ``block``: the training loader hands out two batches, then blocks forever (a stuck FFCV
  queue);
- ``device-fault``: the first training step raises the RuntimeError a CUDA device-side
  assert raises.

The fault is patched in here, so the library carries no test hooks.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections.abc import Iterator
from typing import Any


def _skew(seconds: float) -> None:
    from scalelab.store import queue, schema, status

    def skewed() -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=seconds)

    for module in (schema, queue, status):
        module.utcnow = skewed  # type: ignore[attr-defined]


def _block() -> None:
    from scalelab.train import job

    real = job.make_loader

    class Blocking:
        def __init__(self, loader: Any) -> None:
            self.loader = loader

        def __getattr__(self, name: str) -> Any:
            return getattr(self.loader, name)

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "loader":
                object.__setattr__(self, name, value)
            else:
                setattr(self.loader, name, value)

        def __iter__(self) -> Iterator[Any]:
            for i, batch in enumerate(self.loader):
                if i == 2:
                    print("loader blocked", flush=True)
                    threading.Event().wait()  # as FFCV's Queue.get on a batch never made
                yield batch

    job.make_loader = lambda *a, **k: Blocking(real(*a, **k))  # type: ignore[assignment]


def _device_fault() -> None:
    from scalelab.train import step

    def fault(self: Any, *_args: Any) -> Any:
        raise RuntimeError(
            "CUDA error: device-side assert triggered\nCUDA kernel errors might be "
            "asynchronously reported at some other API call"
        )

    step.TrainStep.__call__ = fault  # type: ignore[method-assign]


def main() -> None:
    fault, args = sys.argv[1], sys.argv[2:]
    if fault.startswith("skew="):
        _skew(float(fault.removeprefix("skew=")))
    elif fault == "block":
        _block()
    elif fault == "device-fault":
        _device_fault()
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    from scalelab.cli import app

    app(["run-worker", *args])


if __name__ == "__main__":
    main()
