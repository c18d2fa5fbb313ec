"""The model zoo: the paper's MLPs and ResMLP, built from a name.

Every model takes normalised images (B, 3, R, R) and returns (logits (B, K), pre-logits
(B, feature_dim)); probes read the pre-logits.

Example:
    model = build_model("B-12/Wi-1024", num_classes=11230, resolution=64)
"""

from __future__ import annotations

from torch import nn

from scalelab.models.mlp import BottleneckMLP, StandardMLP
from scalelab.models.names import ModelSpec, parse_model_name
from scalelab.models.resmlp import ResMLP

# The models of the paper: its scaling-law sweep on ImageNet-21k at 64x64 (Fig. 5) and the
# B-12/Wi-768 of its Table 4.
PAPER_ZOO: list[str] = [
    "B-6/Wi-256",
    "B-12/Wi-256",
    "B-6/Wi-512",
    "B-12/Wi-512",
    "B-12/Wi-768",
    "B-6/Wi-1024",
    "B-12/Wi-1024",
]


def build_model(name: str, num_classes: int, resolution: int) -> nn.Module:
    """The model called `name` with a `num_classes` head for `resolution` x `resolution` input."""
    spec = parse_model_name(name)
    spec.check_input(num_classes, resolution)
    if spec.family == "bottleneck":
        return BottleneckMLP(resolution, num_classes, spec.depth, spec.width, spec.expansion)
    if spec.family == "standard":
        return StandardMLP(resolution, num_classes, spec.depth, spec.width)
    assert spec.patch is not None  # the parser sets it for every ResMLP name
    return ResMLP(resolution, num_classes, spec.depth, spec.width, spec.patch)


__all__ = ["PAPER_ZOO", "ModelSpec", "build_model", "parse_model_name"]
