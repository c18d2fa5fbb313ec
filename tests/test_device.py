"""Device handling on the CUDA path, checked on a CPU with CUDA's entry points faked."""

from __future__ import annotations

import pytest
import torch

from scalelab.train.device import is_device_fault, resolve_device, synchronize


@pytest.fixture
def two_gpus(monkeypatch) -> list:
    """A machine with two (faked) GPUs; returns the devices set_device was called with."""
    selected: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)
    return selected


def test_a_cuda_device_becomes_the_current_device(two_gpus):
    # FFCV creates its streams and events on the current device: cuda:1 must be it.
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert two_gpus == [torch.device("cuda", 1), torch.device("cuda", 0)]


def test_the_cpu_selects_no_gpu(two_gpus):
    assert resolve_device("cpu") == torch.device("cpu")
    assert two_gpus == []


def test_synchronize_waits_for_cuda_only(monkeypatch):
    waited: list = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)
    synchronize(torch.device("cpu"))
    synchronize(torch.device("cuda", 1))
    assert waited == [torch.device("cuda", 1)]


def test_device_faults_are_cuda_errors_other_than_out_of_memory():
    assert is_device_fault(torch.AcceleratorError("CUDA error: device-side assert triggered"))
    assert is_device_fault(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_device_fault(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert not is_device_fault(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_device_fault(ValueError("CUDA error"))
