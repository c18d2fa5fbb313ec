"""The gradient-trained probes: `lion` (the paper's protocol) and `logreg` (an L-BFGS reference).

Both train a linear layer with cross-entropy on standardised frozen features in float32,
starting from zero so that the result depends on the seed only through the batch order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from scalelab.probe.linear import LinearClassifier, Standardiser, holdout_split, row_chunks
from scalelab.train.lion import Lion


def _zero_layer(dim: int, num_classes: int, device: torch.device) -> tuple[Tensor, Tensor]:
    weight = torch.zeros(dim, num_classes, device=device, requires_grad=True)  # (D, K)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)  # (K,)
    return weight, bias


def fit_lion(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    seed: int,
    lr: float,
    epochs: int,
    batch_size: int,
    weight_decay: float,
) -> tuple[LinearClassifier, dict[str, Any]]:
    """Appendix A.3 of the paper: a linear layer trained with LION on the frozen features."""
    standardiser = Standardiser.fit(x)
    weight, bias = _zero_layer(x.shape[1], num_classes, x.device)
    optimizer = Lion([weight, bias], lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    epoch_loss = torch.zeros((), device=x.device)  # summed over the last epoch's examples
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        epoch_loss.zero_()
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            z = standardiser.apply(x[rows], torch.float32)  # (B, D)
            loss = F.cross_entropy(z @ weight + bias, y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.detach() * rows.shape[0]
    details = {"final_train_loss": float(epoch_loss) / n}
    return LinearClassifier(standardiser, weight.detach(), bias.detach()), details


def _lbfgs(
    x: Tensor,
    y: Tensor,
    rows: Tensor,
    num_classes: int,
    standardiser: Standardiser,
    l2: float,
    max_iter: int,
    start: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Full-batch L-BFGS on mean cross-entropy + l2·||W||² over `rows`, accumulated by chunks.

    Starts from zero, or from `start` = (weight, bias) of a nearby problem.
    """
    weight, bias = _zero_layer(x.shape[1], num_classes, x.device)
    if start is not None:
        with torch.no_grad():
            weight.copy_(start[0])
            bias.copy_(start[1])
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )
    n = rows.shape[0]

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=False)
        total = torch.zeros((), device=x.device)
        for selector, chunk in row_chunks(x, rows):
            z = standardiser.apply(chunk, torch.float32)  # (m, D)
            loss = F.cross_entropy(z @ weight + bias, y[selector], reduction="sum") / n
            loss.backward()  # gradients add up over chunks: one full-batch gradient
            total += loss.detach()
        penalty = l2 * weight.square().sum()
        penalty.backward()
        return total + penalty.detach()

    optimizer.step(closure)
    state = optimizer.state[weight]
    fit = {"iterations": int(state["n_iter"]), "function_evaluations": int(state["func_evals"])}
    return weight.detach(), bias.detach(), fit


def fit_logreg(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    seed: int,
    l2: float | Sequence[float],
    max_iter: int,
    holdout: float,
) -> tuple[LinearClassifier, dict[str, Any]]:
    """Multinomial logistic regression; a list of l2 values is chosen between on a held-out split.

    The objective is mean cross-entropy + l2·||W||² (per example, like the ridge penalty).
    """
    standardiser = Standardiser.fit(x)
    details: dict[str, Any] = {}
    start = None
    if isinstance(l2, Sequence):
        fit_rows, held_rows = (r.to(x.device) for r in holdout_split(x.shape[0], holdout, seed))
        errors: dict[float, float] = {}
        solutions = {}
        # From the strongest penalty down, each fit starting from the previous solution: the
        # regularisation path, far fewer iterations than starting every fit from zero.
        for value in sorted(l2, reverse=True):
            weight, bias, _ = _lbfgs(
                x, y, fit_rows, num_classes, standardiser, value, max_iter, start
            )
            start = solutions[value] = (weight, bias)
            held = LinearClassifier(standardiser, weight, bias)
            errors[value] = held.error(x[held_rows], y[held_rows])
        best = min(l2, key=lambda value: (errors[value], -value))
        details |= {"l2_chosen": best, "validation_errors": [errors[value] for value in l2]}
        l2, start = best, solutions[best]
    all_rows = torch.arange(x.shape[0], device=x.device)
    weight, bias, fit = _lbfgs(x, y, all_rows, num_classes, standardiser, l2, max_iter, start)
    return LinearClassifier(standardiser, weight, bias), details | fit
