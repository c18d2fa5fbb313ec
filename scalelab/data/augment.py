"""Model input and training augmentation, on the batch's device, from uint8 batches.

Loaders deliver uint8 (B, 3, H, W) at the data's stored resolution; everything else (resize to
the model's resolution, normalisation, flips, random-resized crops, MixUp, label smoothing)
happens here in a few batched tensor ops, so it runs on the GPU when the batch is there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.special import betaincinv


def _stats(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)


def to_model_input(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], resolution: int
) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, R, R): resized to ``resolution``, normalised.

    Upscaling is bilinear; downscaling (e.g. STL10's 96 pixels to 64) is antialiased.
    """
    x = x.float().div_(255.0)  # (B, 3, H, W) in [0, 1]
    if x.shape[-2:] != (resolution, resolution):
        shrinking = x.shape[-1] > resolution
        x = F.interpolate(
            x,
            size=(resolution, resolution),
            mode="bilinear",
            align_corners=False,
            antialias=shrinking,
        )
    return (x - _stats(mean, x)) / _stats(std, x)


class TrainAugment:
    """Flips, random-resized crops, MixUp and label smoothing for one training batch.

    ``aug(x_uint8 (B, 3, H, W), y (B,), generator) -> (x (B, 3, R, R), y_soft (B, K))``.
    Crops and flips are one affine grid per image and one ``grid_sample`` for the batch,
    which also resizes to ``resolution``. MixUp mixes the batch with a permutation of
    itself, with one weight per batch drawn from Beta(mixup, mixup).
    """

    def __init__(
        self,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        resolution: int,
        flip: bool = True,
        crop_scale: tuple[float, float] = (0.35, 1.0),
        mixup: float = 0.8,
        label_smoothing: float = 0.3,
    ) -> None:
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.num_classes = num_classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.resolution = resolution
        self.flip = flip
        self.crop_scale = crop_scale
        self.mixup = mixup
        self.label_smoothing = label_smoothing

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        images = x.float().div_(255.0)  # (B, 3, H, W) in [0, 1]
        theta = self._crop_and_flip(batch, generator).to(images.device)  # (B, 2, 3)
        grid = F.affine_grid(theta, [batch, 3, self.resolution, self.resolution], False)
        images = F.grid_sample(images, grid, mode="bilinear", align_corners=False)
        images = (images - _stats(self.mean, images)) / _stats(self.std, images)

        targets = F.one_hot(y.long(), self.num_classes).float()  # (B, K)
        targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        if self.mixup > 0 and batch > 1:
            u = torch.rand((), generator=generator, device=generator.device).item()
            lam = float(betaincinv(self.mixup, self.mixup, u))  # Beta(a, a) by inversion
            perm = torch.randperm(batch, generator=generator, device=generator.device)
            perm = perm.to(images.device)
            images = lam * images + (1.0 - lam) * images[perm]
            targets = lam * targets + (1.0 - lam) * targets[perm]
        return images, targets

    def _crop_and_flip(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B, 2, 3) affine maps from output to input coordinates in [-1, 1]."""
        draws = torch.rand(batch, 5, generator=generator, device=generator.device)
        low, high = self.crop_scale
        area = low + (high - low) * draws[:, 0]  # fraction of the image kept
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * draws[:, 1]
        ratio = log_ratio.exp()  # width / height, as torchvision's RandomResizedCrop
        width, height = (area * ratio).sqrt(), (area / ratio).sqrt()  # in image sides
        # A crop that does not fit becomes the whole image, as torchvision's fallback does.
        fits = (width <= 1.0) & (height <= 1.0)
        width, height = torch.where(fits, width, 1.0), torch.where(fits, height, 1.0)
        centre_x = (1.0 - width) * (2.0 * draws[:, 2] - 1.0)  # crop stays inside the image
        centre_y = (1.0 - height) * (2.0 * draws[:, 3] - 1.0)
        sign = torch.where(draws[:, 4] < 0.5, -1.0, 1.0) if self.flip else torch.ones(batch)
        theta = torch.zeros(batch, 2, 3, device=draws.device)
        theta[:, 0, 0] = width * sign.to(draws.device)
        theta[:, 0, 2] = centre_x
        theta[:, 1, 1] = height
        theta[:, 1, 2] = centre_y
        return theta
