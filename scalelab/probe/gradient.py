"""The gradient-trained probes: `lion` (the authors' linear mode) and `logreg` (L-BFGS reference).

`lion` is the authors' `finetune.py --mode linear`, setting for setting: a fresh `nn.Linear`
(PyTorch's default initialisation, seeded) on the raw pre-logits, LION, cross-entropy with
label smoothing, gradient-norm clipping, the last partial batch dropped, and (``augment``)
freshly augmented training images every epoch. `logreg` trains a linear layer on
standardised features from zero, so that its result depends on the seed only through the
held-out split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalelab.errors import ProbeError
from scalelab.probe.linear import LinearClassifier, Standardiser, holdout_split, row_chunks
from scalelab.train.lion import Lion

# One pass over the training split, in a new order at each call: (features (B, D) float32,
# labels (B,) int64) batches, the last partial batch dropped.
EpochBatches = Callable[[], Iterable[tuple[Tensor, Tensor]]]


def _zero_layer(dim: int, num_classes: int, device: torch.device) -> tuple[Tensor, Tensor]:
    weight = torch.zeros(dim, num_classes, device=device, requires_grad=True)  # (D, K)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)  # (K,)
    return weight, bias


def feature_batches(x: Tensor, y: Tensor, batch_size: int, seed: int) -> EpochBatches:
    """Shuffled full batches of fixed features; each call draws the next epoch's order."""
    generator = torch.Generator().manual_seed(seed)

    def epoch() -> Iterable[tuple[Tensor, Tensor]]:
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        for start in range(0, x.shape[0] - batch_size + 1, batch_size):
            rows = order[start : start + batch_size]
            yield x[rows], y[rows]

    return epoch


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
    label_smoothing: float,
    clip: float,
    augment: bool,
    augmented: EpochBatches | None = None,
) -> tuple[LinearClassifier, dict[str, Any]]:
    """The authors' linear probe on features x (n, D); ``augmented`` gives augmented epochs.

    Without augmentation every epoch reshuffles the fixed features x. With it, x only sets
    the feature dimension and ``augmented`` (built from the images by `probe_encoder`)
    supplies each epoch's features.
    """
    if augment and augmented is None:
        raise ProbeError(
            "the lion probe's augment = true needs the training images, not features; "
            "probe an encoder (scalelab probe, probe_encoder) or set settings.augment = false"
        )
    if x.shape[0] < batch_size:
        raise ProbeError(
            f"the training split has {x.shape[0]} examples, no full batch of {batch_size} "
            "(the lion probe drops the last partial batch, as the authors' loader does); "
            "lower settings.batch_size"
        )
    batches = augmented if augment and augmented else feature_batches(x, y, batch_size, seed)
    with torch.random.fork_rng(devices=[]):  # a seeded default init, global RNG untouched
        torch.manual_seed(seed)
        head = nn.Linear(x.shape[1], num_classes)  # weight (K, D), bias (K,)
    head = head.to(x.device)
    optimizer = Lion(head.parameters(), lr=lr, weight_decay=weight_decay)
    epoch_loss = torch.zeros((), device=x.device)  # summed over the last epoch's examples
    seen = 0
    for _ in range(epochs):
        epoch_loss.zero_()
        seen = 0
        for features, labels in batches():
            loss = F.cross_entropy(head(features), labels, label_smoothing=label_smoothing)
            loss.backward()
            if clip > 0:  # the authors' `if args.clip > 0`
                nn.utils.clip_grad_norm_(head.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += loss.detach() * labels.shape[0]
            seen += labels.shape[0]
    raw = Standardiser.identity(x.shape[1], x.device)  # the authors probe raw pre-logits
    classifier = LinearClassifier(raw, head.weight.detach().T, head.bias.detach())
    details = {"final_train_loss": float(epoch_loss) / max(seen, 1), "standardised": False}
    return classifier, details


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
