"""Where training runs: `--device auto|cpu|cuda|cuda:N`, and how many CPU threads a worker takes."""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys

import torch

from scalelab.errors import DeviceError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str) -> torch.device:
    """'auto' is the first GPU when there is one, else the CPU; CUDA devices must exist.

    A CUDA device is also made the current one: libraries that allocate on the current
    device rather than a given one (FFCV's streams and events) would otherwise use cuda:0.
    """
    spec = spec.strip().lower()
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    device = torch.device("cuda:0") if spec == "auto" else _cuda_device(spec)
    torch.cuda.set_device(device)
    return device


def _cuda_device(spec: str) -> torch.device:
    match = _CUDA.fullmatch(spec)
    if match is None:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    index = int(match.group(1) or 0)
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} requested but CUDA is not available on this machine; "
            "use --device cpu or --device auto"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"device {spec!r} does not exist: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs ahead of the host); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_device_fault(exc: BaseException) -> bool:
    """True for a CUDA error other than out-of-memory (a device-side assert, an illegal address).

    Such an error leaves the process's CUDA context unusable, so every later job of the same
    worker would fail too; out-of-memory leaves it intact and is worth a retry.
    """
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return False
    if isinstance(exc, torch.AcceleratorError):
        return True
    return isinstance(exc, RuntimeError) and "CUDA error" in str(exc)


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def cpu_threads_for(workers_on_host: int) -> int:
    """Threads for one of `workers_on_host` workers sharing this machine's CPUs (at least 1).

    Oversubscribing cores makes matmul threads wait on each other, which costs far more than
    the idle core an uneven split leaves, so we round down.
    """
    if workers_on_host < 1:
        raise ValueError(f"workers_on_host must be at least 1, got {workers_on_host}")
    return max(1, available_cpus() // workers_on_host)


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """Stop glibc from returning large freed blocks to the OS; True if it took effect.

    By default glibc serves every allocation over 32 MB with a fresh mmap and unmaps it when
    freed, so each large activation or gradient of a CPU training step is page-faulted in
    again (a memset's worth of kernel time per tensor, slower than the op that fills it).
    Keeping freed memory in the heap lets the next step reuse it. Process-wide, Linux only.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): leave the allocator alone
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters from <malloc.h>
    no_mmap = libc.mallopt(m_mmap_max, 0) == 1
    no_trim = libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    return no_mmap and no_trim
