"""Compute accounting in the paper's convention (Eq. 4): C = FLOP(f) * 3 * N * T.

FLOP(f) is the cost of one forward pass on one example, counted by tracing the model with
torch.utils.flop_counter (not assumed from the parameter count: for ResMLP the two differ
by an order of magnitude). The authors counted with fvcore, where one multiply-accumulate
is one FLOP; FlopCounterMode counts two, so we halve its count and store the convention
("mac") with every number. The factor 3 in Eq. 4 is forward + backward (about twice the
forward) per example and epoch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from scalelab.models import build_model, parse_model_name

Convention = Literal["mac"]


@dataclass(frozen=True)
class ModelCost:
    params: int
    flops: int  # FLOP(f) per example, forward pass only
    convention: Convention = "mac"  # one multiply-accumulate = one FLOP (fvcore, the paper)


@functools.lru_cache(maxsize=1024)
def model_cost(name: str, num_classes: int, resolution: int) -> ModelCost:
    """Parameters and FLOP(f) per example of a model, counted on the meta device (no memory).

    Example: model_cost("B-12/Wi-768", 1000, 64) -> ModelCost(params=66894568, flops=66828288)
    """
    with torch.device("meta"):
        model = build_model(name, num_classes, resolution)
        x = torch.empty(1, 3, resolution, resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate; the paper counts 1.
    multiply_accumulates = counter.get_total_flops() // 2
    params = sum(p.numel() for p in model.parameters())
    return ModelCost(params=params, flops=multiply_accumulates)


def compute(flops: int | float, examples: int, epochs: int | float) -> float:
    """Eq. 4: total training compute C = FLOP(f) * 3 * N * T, in the convention of `flops`."""
    return float(flops) * 3 * examples * epochs


def describe_model(
    name: str,
    num_classes: int,
    resolution: int,
    examples: int | None = None,
    epochs: float | None = None,
) -> dict[str, Any]:
    """What `scalelab model-info` prints: size, FLOP(f) and, given N and T, the compute C."""
    spec = parse_model_name(name)
    cost = model_cost(spec.name, num_classes, resolution)
    info: dict[str, Any] = {
        "model": spec.name,
        "classes": num_classes,
        "resolution": resolution,
        "params": cost.params,
        "flops": cost.flops,
        "flop_convention": cost.convention,
    }
    if (examples is None) != (epochs is None):
        raise ValueError("give both examples and epochs to compute C, or neither")
    if examples is not None and epochs is not None:
        total = compute(cost.flops, examples, epochs)
        info.update(examples=examples, epochs=epochs, compute=total, pflops=total / 1e15)
    return info
