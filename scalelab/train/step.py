"""One optimisation step on one batch, the same on a CPU and a GPU.

The training loop hands `TrainStep` an augmented batch (float images, soft targets after
MixUp and label smoothing) and gets the mean loss back as a device tensor: reading it on the
host would make every step wait for the device, so the loop reads it one step late. The
precision is the authors' by default, float32 with TF32 matmuls on CUDA (`"tf32"`; plain
float32 on a CPU); `"bf16"` opts into bf16 autocast. A batch larger than memory is split into
micro-batches whose gradients add up to the full batch's (gradient accumulation), so the
paper's batch of 16,384 fits any GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer

from scalelab.errors import GridError
from scalelab.grid import OPTIMIZERS, PRECISIONS
from scalelab.train.device import keep_freed_memory_for_reuse
from scalelab.train.lion import Lion


class TrainStep:
    def __init__(
        self,
        model: nn.Module,
        optimizer: Optimizer,
        *,
        device: torch.device | str,
        accumulation_steps: int = 1,
        precision: str = "tf32",
        compile: bool = False,
    ) -> None:
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be at least 1, got {accumulation_steps}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model = model
        self.optimizer = optimizer
        self.device = torch.device(device)
        self.accumulation_steps = accumulation_steps
        self.precision = precision
        # bf16 is opt-in everywhere: the authors train in float32 with TF32 matmuls, and on a
        # CPU bf16 is emulated (slower than float32) without AVX512-BF16/AMX.
        self.bf16 = precision == "bf16"
        if self.device.type == "cpu":
            keep_freed_memory_for_reuse()
        if self.device.type == "cuda":
            # TF32 matmuls for float32 (the authors' `allow_tf32 = True`): 8x the float32 rate.
            # The allow_tf32 flags, not fp32_precision: once the newer API is set, every later
            # read of the older one (other libraries, inductor) raises a RuntimeError.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.compiled = compile
        self.forward = torch.compile(model) if compile else model

    def __call__(self, x: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
        """Update the model on x (B, 3, R, R) float and y_soft (B, K); the mean loss, () tensor.

        The loss stays on the device: `.item()` here would wait for the step to finish.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        batch = x.shape[0]
        steps = min(self.accumulation_steps, batch)  # never an empty micro-batch
        total = torch.zeros((), device=x.device)
        for x_micro, y_micro in zip(x.tensor_split(steps), y_soft.tensor_split(steps), strict=True):
            if self.compiled:
                # Uneven micro-batches (B not divisible by the steps) and another job's batch
                # would each compile a new static graph; one graph dynamic in b serves them all
                # ("maybe": a micro-batch of one image stays specialised instead of raising).
                torch._dynamo.maybe_mark_dynamic(x_micro, 0)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits, _ = self.forward(x_micro)  # (b, K)
            # Weighted so that the summed gradients equal those of the mean over the batch.
            # Cross-entropy in float32: a bf16 log-softmax over 11k classes loses the loss.
            loss = soft_cross_entropy(logits.float(), y_micro) * (x_micro.shape[0] / batch)
            loss.backward()
            total += loss.detach()
        self.optimizer.step()
        return total


def soft_cross_entropy(logits: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ_k y_k log softmax(logits)_k, for MixUp/label-smoothed targets."""
    return F.cross_entropy(logits, y_soft)


def make_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.99),
) -> Optimizer:
    """The optimizer `name` over all parameters, weight decay on all of them (as the authors).

    "lion" (the paper's), "adamw", or "sgd" with momentum betas[0] (the authors' 0.9).
    """
    params = list(model.parameters())
    on_cuda = params[0].is_cuda
    if name == "lion":
        return Lion(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(
            params, lr=lr, betas=betas, weight_decay=weight_decay, fused=on_cuda or None
        )
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=betas[0], weight_decay=weight_decay)
    raise GridError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")
