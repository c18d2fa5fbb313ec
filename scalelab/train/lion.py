"""LION (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), the paper's optimizer.

Per parameter θ with gradient g and momentum m, learning rate lr and weight decay λ:

    c = β1·m + (1 − β1)·g
    θ ← θ − lr·(sign(c) + λ·θ)
    m ← β2·m + (1 − β2)·g

Every update has the same magnitude lr per coordinate, which is why the paper's lr (1e-5)
is ~10x smaller than an AdamW one. The update runs as a few multi-tensor (foreach) kernels
over all parameters at once: for a 125M-parameter model it is a memory-bound pass that we
keep short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class Lion(Optimizer):
    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"LION needs a positive learning rate, got {lr}")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"LION needs betas in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"LION needs a non-negative weight decay, got {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            momenta = [self._momentum(p) for p in params]
            beta1, beta2 = group["betas"]
            lr, weight_decay = group["lr"], group["weight_decay"]

            # c = β1·m + (1 − β1)·g = m + (1 − β1)·(g − m), then sign(c)
            updates = torch._foreach_lerp(momenta, grads, 1.0 - beta1)
            torch._foreach_sign_(updates)
            # θ ← θ − lr·λ·θ − lr·sign(c)  (decay uses θ before this step's update)
            if weight_decay != 0.0:
                torch._foreach_mul_(params, 1.0 - lr * weight_decay)
            torch._foreach_add_(params, updates, alpha=-lr)
            # m ← β2·m + (1 − β2)·g
            torch._foreach_lerp_(momenta, grads, 1.0 - beta2)
        return loss

    def _momentum(self, param: torch.Tensor) -> torch.Tensor:
        state = self.state[param]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state["exp_avg"]
