"""Peer benchmark, training step: scalelab's TrainStep against the authors' loop, plain PyTorch.

The peer is written here, nanoGPT style, after github.com/gregorbachmann/scaling_mlps:
their BottleneckMLP (models/networks.py: linear_in, blocks x + Linear(GELU(Linear(LN(x)))),
linear_out), their LION (utils/optimizer.py: a Python loop over parameters), and their
train.py step: flatten, forward, MixUp as two label-smoothed cross-entropies weighted by the
mixing weight, backward, optimizer step, zero_grad, `loss.item()`. scalelab: its own model
(`build_model`) and `TrainStep` (scalelab/train/step.py) on the same batch with MixUp's soft
targets, as the worker runs it. Same architecture, batch, weights, LION settings (lr 1e-5,
weight decay 1e-3, betas (0.9, 0.99)) and float32 on the CPU; steps are timed alternately so
that both see the same load.

Usage: python benchmarks/bench_peer_train.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from authors_reference import AuthorsLion
from common import machine, write_section
from torch import nn

from scalelab.models import build_model
from scalelab.train.step import TrainStep, make_optimizer

CLASSES = 11230  # the ImageNet-21k head
RESOLUTION = 64
LR, WEIGHT_DECAY, BETAS, SMOOTHING = 1e-5, 1e-3, (0.9, 0.99), 0.3  # paper A.4


# ---- the peer: the authors' model, optimizer and step, written as plain PyTorch ----------


class Block(nn.Module):
    def __init__(self, thin: int, wide: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(thin, wide), nn.GELU(), nn.Linear(wide, thin))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class AuthorsMLP(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, depth: int, width: int) -> None:
        super().__init__()
        self.linear_in = nn.Linear(dim_in, width)
        self.blocks = nn.ModuleList(Block(width, 4 * width) for _ in range(depth))
        self.layernorms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.linear_out = nn.Linear(width, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_in(x)  # (B, m)
        for block, norm in zip(self.blocks, self.layernorms, strict=True):
            x = x + block(norm(x))
        return self.linear_out(x)  # (B, K)


def authors_step(model, opt, ims, targs, targs_perm, weight) -> float:
    """One step of their train.py (accum_steps 1, clip 0: the paper's settings)."""
    ims = torch.reshape(ims, (ims.shape[0], -1))  # (B, 3·R·R)
    preds = model(ims)  # (B, K)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    loss = loss_fn(preds, targs) * weight + loss_fn(preds, targs_perm) * (1 - weight)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()


# ---- the comparison ------------------------------------------------------------------------


def soft_targets(targs, targs_perm, weight: float) -> torch.Tensor:
    """MixUp of label-smoothed one-hots: the same loss as the authors' two-term form."""
    smooth = lambda t: F.one_hot(t, CLASSES).float() * (1 - SMOOTHING) + SMOOTHING / CLASSES  # noqa: E731
    return weight * smooth(targs) + (1 - weight) * smooth(targs_perm)  # (B, K)


def bench(name: str, batch: int, repeats: int) -> dict[str, float]:
    depth, width = (int(part.split("-")[1]) for part in name.split("/"))
    torch.manual_seed(0)
    ours_model = build_model(name, CLASSES, RESOLUTION)
    peer_model = AuthorsMLP(3 * RESOLUTION**2, CLASSES, depth, width)
    # The same weights on both sides: scalelab's parameters in the authors' layout.
    ours_params = list(ours_model.parameters())
    peer_params = [
        *peer_model.linear_in.parameters(),
        *(
            q
            for i in range(depth)
            for q in (*peer_model.layernorms[i].parameters(), *peer_model.blocks[i].parameters())
        ),
        *peer_model.linear_out.parameters(),
    ]
    assert [p.shape for p in ours_params] == [p.shape for p in peer_params]
    with torch.no_grad():
        for mine, theirs in zip(ours_params, peer_params, strict=True):
            theirs.copy_(mine)
    step = TrainStep(
        ours_model,
        make_optimizer(ours_model, "lion", LR, WEIGHT_DECAY, BETAS),
        device="cpu",
    )
    peer_opt = AuthorsLion(peer_model.parameters(), LR, BETAS, WEIGHT_DECAY)

    g = torch.Generator().manual_seed(1)
    ims = torch.randn(batch, 3, RESOLUTION, RESOLUTION, generator=g)
    targs = torch.randint(0, CLASSES, (batch,), generator=g)
    targs_perm = targs[torch.randperm(batch, generator=g)]
    weight = 0.7
    y_soft = soft_targets(targs, targs_perm, weight)
    # The two losses agree before any step: the comparison is of the same computation.
    with torch.no_grad():
        ours_loss = F.cross_entropy(ours_model(ims)[0], y_soft).item()
        loss_fn = nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
        logits = peer_model(ims.reshape(batch, -1))
        authors_loss = (
            loss_fn(logits, targs) * weight + loss_fn(logits, targs_perm) * (1 - weight)
        ).item()
    assert abs(ours_loss - authors_loss) < 1e-4 * abs(authors_loss), (ours_loss, authors_loss)

    step(ims, y_soft).item()  # warm-up: gradients and optimizer state allocated
    authors_step(peer_model, peer_opt, ims, targs, targs_perm, weight)
    ours_s, peer_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        step(ims, y_soft).item()
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        authors_step(peer_model, peer_opt, ims, targs, targs_perm, weight)
        peer_s.append(time.perf_counter() - start)
    return {
        "ours": batch / statistics.median(ours_s),
        "peer": batch / statistics.median(peer_s),
        "loss": authors_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B-2/Wi-128, batch 64, 2 steps")
    args = parser.parse_args()
    if args.quick:
        models, batch, repeats = ["B-2/Wi-128"], 64, 2
    else:
        models, batch, repeats = ["B-6/Wi-1024", "B-12/Wi-1024"], 1024, 5
    load_before = os.getloadavg()[0]
    rows = []
    for name in models:
        r = bench(name, batch, repeats)
        print(f"{name}: scalelab {r['ours']:,.0f}, authors {r['peer']:,.0f} images/s", flush=True)
        rows.append((name, r))
    lines = [
        "## Peer: training step against the authors' loop (CPU)",
        "",
        f"Machine: {machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after. Batch {batch}, 64×64×3, {CLASSES:,}-class head, "
        "float32, LION (lr 1e-5, weight decay 1e-3), MixUp targets with label smoothing 0.3; "
        f"medians over {repeats} steps after a warm-up, the two timed alternately. Authors' "
        "loop: their BottleneckMLP, LION and train.py step (two cross-entropies, per-parameter "
        "LION loop, `loss.item()`) written as plain PyTorch in benchmarks/bench_peer_train.py; "
        "scalelab: `TrainStep` on its own model with the same weights, one soft-target "
        "cross-entropy, foreach LION (`.item()` too, so both wait for the step).",
        "",
        "| model | scalelab images/s | authors' loop images/s | ratio (scalelab ÷ authors) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['ours']:,.0f} | {r['peer']:,.0f} | {r['ours'] / r['peer']:.2f}× |"
        )
    write_section("peer_train", "\n".join(lines))


if __name__ == "__main__":
    main()
