"""ResMLP (Touvron et al. 2021, "ResMLP: Feedforward networks for image classification").

ResMLP-L/d/p: non-overlapping p x p patches embedded linearly to d channels, L residual
blocks of [Affine -> linear mixing across the N patches -> LayerScale] and
[Affine -> GELU MLP over channels (expansion 4) -> LayerScale], a final Affine, average
pooling over patches and a linear head. Its weights are shared across patches (channel MLP)
and across channels (patch mixing), so FLOP(f) per image is much larger than its parameter
count, unlike the plain MLPs.
"""

from __future__ import annotations

import torch
from torch import nn

from scalelab.models.inputs import check_image_batch

CHANNEL_EXPANSION = 4


class Affine(nn.Module):
    """alpha * x + beta per channel: ResMLP's replacement for LayerNorm (no statistics)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        return torch.addcmul(self.beta, self.alpha, x)


class ResMLPBlock(nn.Module):
    def __init__(self, num_patches: int, dim: int, layerscale_init: float) -> None:
        super().__init__()
        self.norm_patches = Affine(dim)
        self.mix_patches = nn.Linear(num_patches, num_patches)
        self.scale_patches = nn.Parameter(torch.full((dim,), layerscale_init))
        self.norm_channels = Affine(dim)
        self.mlp_channels = nn.Sequential(
            nn.Linear(dim, CHANNEL_EXPANSION * dim),
            nn.GELU(),
            nn.Linear(CHANNEL_EXPANSION * dim, dim),
        )
        self.scale_channels = nn.Parameter(torch.full((dim,), layerscale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, d) -> (B, N, d)
        mixed = self.mix_patches(self.norm_patches(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.scale_patches * mixed
        return x + self.scale_channels * self.mlp_channels(self.norm_channels(x))


class ResMLP(nn.Module):
    def __init__(self, resolution: int, num_classes: int, depth: int, dim: int, patch: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.feature_dim = dim
        num_patches = (resolution // patch) ** 2
        self.embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.blocks = nn.Sequential(
            *(ResMLPBlock(num_patches, dim, layerscale_init(depth)) for _ in range(depth))
        )
        self.norm = Affine(dim)
        self.head = nn.Linear(dim, num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_image_batch(x, self.resolution)
        patches = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, d)
        features = self.norm(self.blocks(patches)).mean(dim=1)  # (B, d)
        return self.head(features), features  # (B, K), (B, d)


def layerscale_init(depth: int) -> float:
    """The ResMLP paper's LayerScale initialisation: smaller for deeper networks."""
    if depth <= 18:
        return 0.1
    if depth <= 24:
        return 1e-5
    return 1e-6


def _init_weights(module: nn.Module) -> None:
    # Truncated normal (std 0.02) for every linear map, zero biases, as in the reference code.
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
