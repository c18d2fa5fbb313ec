"""The paper's MLPs on flattened images: the inverted-bottleneck MLP and the standard MLP.

Both follow the authors' code (github.com/gregorbachmann/scaling_mlps, models/networks.py)
so that parameter counts, FLOP(f) and initialisation (PyTorch's default for nn.Linear) are
the paper's: B-12/Wi-1024 with an 11,230-class head at 64x64 has 124,843,998 parameters,
which the paper rounds to 124.84M. There is no LayerNorm after the last block: with one it
would be 124.85M.
"""

from __future__ import annotations

import torch
from torch import nn

from scalelab.models.inputs import check_image_batch


class BottleneckBlock(nn.Module):
    """x + W_c GELU(W_e LN(x)), with W_e: m -> k*m and W_c: k*m -> m (pre-norm residual)."""

    def __init__(self, width: int, expansion: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, expansion * width)
        self.act = nn.GELU()
        self.contract = nn.Linear(expansion * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, m) -> (B, m)
        h = self.act(self.expand(self.norm(x)))  # (B, k*m)
        # In place on the fresh output of the last matmul: saves a (B, m) buffer per block;
        # addmm's backward does not need its output, so autograd allows it.
        return self.contract(h).add_(x)


class BottleneckMLP(nn.Module):
    """B-L/Wi-m/E-k: linear embedding 3*r*r -> m, L bottleneck blocks, linear head m -> K."""

    def __init__(
        self, resolution: int, num_classes: int, depth: int, width: int, expansion: int
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.feature_dim = width
        self.embed = nn.Linear(3 * resolution * resolution, width)
        self.blocks = nn.Sequential(*(BottleneckBlock(width, expansion) for _ in range(depth)))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.blocks(self.embed(flatten_image(x, self.resolution)))  # (B, m)
        return self.head(features), features  # (B, K), (B, m)


class StandardMLP(nn.Module):
    """S-L/Wi-m: L linear layers of width m with LayerNorm + GELU between them, linear head.

    As in the authors' StandardMLP: Linear(3*r*r -> m), then L-1 times
    [LN, GELU, Linear(m -> m)], then the head. No residual connections.
    """

    def __init__(self, resolution: int, num_classes: int, depth: int, width: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.feature_dim = width
        self.embed = nn.Linear(3 * resolution * resolution, width)
        self.layers = nn.Sequential(
            *(
                nn.Sequential(nn.LayerNorm(width), nn.GELU(), nn.Linear(width, width))
                for _ in range(depth - 1)
            )
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.layers(self.embed(flatten_image(x, self.resolution)))  # (B, m)
        return self.head(features), features  # (B, K), (B, m)


def flatten_image(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, 3, R, R) -> (B, 3*R*R), channel-major like the authors' reshape of FFCV batches."""
    check_image_batch(x, resolution)
    return x.flatten(1)
