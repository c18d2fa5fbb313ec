"""The input every model takes: a float batch of normalised images (B, 3, R, R)."""

from __future__ import annotations

import torch


def check_image_batch(x: torch.Tensor, resolution: int) -> None:
    """Raise a clear error instead of a matmul shape mismatch deep inside the model."""
    if x.dim() != 4 or tuple(x.shape[1:]) != (3, resolution, resolution):
        raise ValueError(
            f"expected images of shape (B, 3, {resolution}, {resolution}), got "
            f"{tuple(x.shape)}; resize them with scalelab.data.to_model_input"
        )
