"""The per-batch training step, optimizer choice, devices and CPU thread splitting."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from scalelab.errors import DeviceError, GridError
from scalelab.models import build_model
from scalelab.train import device as device_module
from scalelab.train.device import cpu_threads_for, resolve_device
from scalelab.train.lion import Lion
from scalelab.train.step import TrainStep, make_optimizer, soft_cross_entropy


def soft_batch(n: int, classes: int, resolution: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, resolution, resolution, generator=gen)
    y = torch.softmax(3 * torch.randn(n, classes, generator=gen), dim=1)
    return x, y


def test_soft_cross_entropy_is_the_definition():
    logits = torch.randn(6, 5)
    y = torch.softmax(torch.randn(6, 5), dim=1)
    expected = -(y * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, y), expected)


def test_loss_falls_when_fitting_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("B-2/Wi-32", num_classes=5, resolution=8)
    step = TrainStep(model, make_optimizer(model, "lion", 1e-3, 1e-3), device="cpu")
    x, y = soft_batch(64, 5, 8)
    losses = [step(x, y) for _ in range(30)]
    # The loss stays a device tensor: reading it back would make each step wait.
    assert all(isinstance(loss, torch.Tensor) and loss.shape == () for loss in losses)
    assert float(losses[-1]) < 0.7 * float(losses[0])


@pytest.mark.parametrize("steps", [2, 3, 64, 1000])
def test_accumulation_gives_the_full_batch_gradient(steps: int):
    torch.manual_seed(0)
    model = build_model("B-2/Wi-16", num_classes=4, resolution=8)
    twin = copy.deepcopy(model)
    x, y = soft_batch(64, 4, 8)  # 64 does not split evenly in 3; 1000 > batch
    # Plain SGD: the update is -lr * gradient, so equal parameters mean equal gradients.
    whole = TrainStep(model, make_optimizer(model, "sgd", 0.5, 0.0, (0.0, 0.0)), device="cpu")
    split = TrainStep(
        twin,
        make_optimizer(twin, "sgd", 0.5, 0.0, (0.0, 0.0)),
        device="cpu",
        accumulation_steps=steps,
    )
    assert float(whole(x, y)) == pytest.approx(float(split(x, y)), rel=1e-5)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_float32_by_default_and_bf16_autocast_only_when_asked():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=3, resolution=4)
    seen: list[torch.dtype] = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    fp32 = TrainStep(model, make_optimizer(model, "adamw", 1e-3, 0.0), device="cpu")
    x, y = soft_batch(8, 3, 4)
    fp32(x, y)
    assert fp32.precision == "tf32" and seen == [torch.float32]  # the authors': no autocast
    bf16 = TrainStep(
        model, make_optimizer(model, "adamw", 1e-3, 0.0), device="cpu", precision="bf16"
    )
    loss = bf16(x, y)
    assert seen == [torch.float32, torch.bfloat16] and math.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    expected = r"precision must be one of \('tf32', 'bf16'\), got 'fp16'"
    with pytest.raises(ValueError, match=expected):
        TrainStep(model, make_optimizer(model, "adamw", 1e-3, 0.0), device="cpu", precision="fp16")


def test_nan_loss_is_returned_not_hidden():
    # The worker marks a job diverged from the loss this returns.
    model = build_model("B-1/Wi-8", num_classes=3, resolution=4)
    step = TrainStep(model, make_optimizer(model, "lion", 1e-3, 0.0), device="cpu")
    x, y = soft_batch(4, 3, 4)
    x[0, 0, 0, 0] = float("nan")
    assert math.isnan(float(step(x, y)))


def test_optimizers_by_name():
    model = build_model("B-1/Wi-8", num_classes=3, resolution=4)
    lion = make_optimizer(model, "lion", 1e-5, 1e-3)
    assert isinstance(lion, Lion)
    assert lion.defaults == {"lr": 1e-5, "betas": (0.9, 0.99), "weight_decay": 1e-3}
    assert isinstance(make_optimizer(model, "adamw", 1e-3, 0.05), torch.optim.AdamW)
    sgd = make_optimizer(model, "sgd", 0.1, 1e-4)
    assert sgd.defaults["momentum"] == 0.9
    with pytest.raises(GridError) as exc:
        make_optimizer(model, "adam", 1e-3, 0.0)
    assert str(exc.value) == "unknown optimizer 'adam'; use one of lion, adamw, sgd"


def test_invalid_accumulation():
    model = build_model("B-1/Wi-8", num_classes=3, resolution=4)
    with pytest.raises(ValueError, match="accumulation_steps must be at least 1, got 0"):
        TrainStep(
            model, make_optimizer(model, "lion", 1e-5, 0.0), device="cpu", accumulation_steps=0
        )


def test_resolve_device_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected
    with pytest.raises(DeviceError) as exc:
        resolve_device("tpu")
    assert str(exc.value) == "unknown device 'tpu'; use auto, cpu, cuda or cuda:N"


def test_absent_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as exc:
        resolve_device("cuda:0")
    assert str(exc.value) == (
        "device 'cuda:0' requested but CUDA is not available on this machine; "
        "use --device cpu or --device auto"
    )
    assert resolve_device("auto") == torch.device("cpu")


def test_missing_gpu_index_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # no GPU to select here
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError) as exc:
        resolve_device("cuda:2")
    assert str(exc.value) == (
        "device 'cuda:2' does not exist: this machine has 2 CUDA device(s), cuda:0 to cuda:1"
    )


def test_cpu_threads_split_between_workers(monkeypatch):
    monkeypatch.setattr(device_module, "available_cpus", lambda: 16)
    assert [cpu_threads_for(n) for n in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    with pytest.raises(ValueError, match="workers_on_host must be at least 1, got 0"):
        cpu_threads_for(0)
    assert device_module.available_cpus() >= 1


@pytest.mark.slow
def test_compiled_step_matches_eager():
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=3, resolution=4)
    twin = copy.deepcopy(model)
    x, y = soft_batch(16, 3, 4)
    eager = TrainStep(model, make_optimizer(model, "sgd", 0.1, 0.0), device="cpu")
    compiled = TrainStep(twin, make_optimizer(twin, "sgd", 0.1, 0.0), device="cpu", compile=True)
    assert float(eager(x, y)) == pytest.approx(float(compiled(x, y)), rel=1e-5)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
