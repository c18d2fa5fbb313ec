"""Model input and training augmentation, on the batch's device, from uint8 batches.

Loaders deliver uint8 (B, 3, H, W) at the data's stored resolution; everything else (resize to
the model's resolution, normalisation, flips, random-resized crops, MixUp, label smoothing)
happens here in a few batched tensor ops, so it runs on the GPU when the batch is there.
Nothing here reads a value back to the host: the only host-side draw (MixUp's weight) comes
from a CPU generator, so a training step never waits for the device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.special import betaincinv

from scalelab.grid import TRAIN_DEFAULTS

# The authors' crops (FFCV's RandomResizedCropRGBImageDecoder, as torchvision's
# RandomResizedCrop): area fraction and width/height ranges (the grid's defaults), and draws
# per image before the fallback.
CROP_SCALE: tuple[float, float] = tuple(TRAIN_DEFAULTS["crop_scale"])
CROP_RATIO: tuple[float, float] = tuple(TRAIN_DEFAULTS["crop_ratio"])
CROP_TRIES = 10


@functools.lru_cache(maxsize=64)
def _stats(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    # Cached per device: a fresh torch.tensor(list, device=cuda) every batch is a host-to-device
    # copy that the step would wait for.
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return (x - _stats(tuple(mean), x.device)) / _stats(tuple(std), x.device)


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
    return _normalise(x, mean, std)


def sample_crops(
    batch: int,
    side: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """(B, 4) int64 pixel boxes (top, left, height, width) of a square image of ``side`` pixels.

    torchvision's (and FFCV's) RandomResizedCrop, vectorised: up to CROP_TRIES draws of an area
    fraction in ``scale`` and a log-uniform width/height ratio in ``ratio``, rounded to pixels;
    the first draw that fits is taken, at a uniform position; an image with no fitting draw
    gets the fallback, the largest centred crop whose ratio lies in ``ratio``.
    """
    device = generator.device
    draws = torch.rand(batch, CROP_TRIES, 2, generator=generator, device=device)
    area = side * side * (scale[0] + (scale[1] - scale[0]) * draws[..., 0])  # (B, tries)
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * draws[..., 1])  # width / height
    width = torch.round(torch.sqrt(area * aspect))  # half to even, as Python's round()
    height = torch.round(torch.sqrt(area / aspect))
    fits = (width > 0) & (width <= side) & (height > 0) & (height <= side)  # (B, tries)
    first = fits.int().argmax(dim=1, keepdim=True)  # the first fitting try (0 if none)
    width = width.gather(1, first).squeeze(1)
    height = height.gather(1, first).squeeze(1)
    any_fit = fits.any(dim=1)
    # The fallback for a square image: ratio 1 if allowed, else the nearest allowed one.
    fallback_w = side if ratio[0] <= 1 <= ratio[1] else round(side * min(ratio[1], 1.0))
    fallback_h = side if ratio[0] <= 1 <= ratio[1] else round(side / max(ratio[0], 1.0))
    width = torch.where(any_fit, width, float(fallback_w))
    height = torch.where(any_fit, height, float(fallback_h))
    position = torch.rand(batch, 2, generator=generator, device=device)
    top = torch.where(any_fit, (position[:, 0] * (side - height + 1)).floor(), (side - height) // 2)
    left = torch.where(any_fit, (position[:, 1] * (side - width + 1)).floor(), (side - width) // 2)
    return torch.stack([top, left, height, width], dim=1).long()


def _draw_flips(batch: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) bool on the generator's device: which images are mirrored, each with p = 1/2."""
    return torch.rand(batch, generator=generator, device=generator.device) < 0.5


class TrainAugment:
    """Flips, random-resized crops, MixUp and label smoothing for one training batch.

    ``aug(x_uint8 (B, 3, H, W), y (B,), generator, host) -> (x (B, 3, R, R), y_soft (B, K))``.
    ``generator`` lives on the batch's device and draws crops, flips and the MixUp pairing;
    ``host`` is a CPU generator for MixUp's weight, one per batch from Beta(mixup, mixup).
    Crops and flips are one affine grid per image and one ``grid_sample`` for the batch,
    which also resizes to ``resolution``. ``crop=False`` when the loader has cropped already
    (FFCV's decoder on an aspect-preserving .beton, its ``crops_done``): flips only.
    """

    def __init__(
        self,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        resolution: int,
        flip: bool = True,
        crop_scale: tuple[float, float] = CROP_SCALE,
        mixup: float = 0.8,
        label_smoothing: float = 0.3,
        crop_ratio: tuple[float, float] = CROP_RATIO,
    ) -> None:
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        if not 0.0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {crop_ratio}")
        self.num_classes = num_classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.resolution = resolution
        self.flip = flip
        self.crop_scale = crop_scale
        self.crop_ratio = crop_ratio
        self.mixup = mixup
        self.label_smoothing = label_smoothing

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        host: torch.Generator,
        crop: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        images = self.images(x, generator, crop)  # (B, 3, R, R)
        targets = F.one_hot(y.long(), self.num_classes).float()  # (B, K)
        targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        if self.mixup > 0 and batch > 1:
            u = float(torch.rand((), generator=host))  # a CPU draw: no device round trip
            lam = float(betaincinv(self.mixup, self.mixup, u))  # Beta(a, a) by inversion
            perm = torch.randperm(batch, generator=generator, device=generator.device)
            perm = perm.to(images.device)
            images = lam * images + (1.0 - lam) * images[perm]
            targets = lam * targets + (1.0 - lam) * targets[perm]
        return images, targets

    def images(
        self, x: torch.Tensor, generator: torch.Generator, crop: bool = True
    ) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> cropped, flipped, resized, normalised float (B, 3, R, R)."""
        batch, side = x.shape[0], x.shape[-1]
        images = x.float().div_(255.0)  # (B, 3, S, S) in [0, 1]
        if side == self.resolution and not (crop and self._crops_cut()):
            # Every box is the whole image at the model's side: grid_sample would sample each
            # pixel at its own centre (equal to 1e-6) at 5x the cost of everything else here
            # on a CPU (16x16, batch 128). Flips only, so no crop is drawn from ``generator``.
            if self.flip:
                flips = _draw_flips(batch, generator).to(images.device).view(batch, 1, 1, 1)
                images = torch.where(flips, images.flip(-1), images)
            return _normalise(images, self.mean, self.std)
        theta = self._crop_and_flip(batch, side, generator, crop).to(images.device)  # (B, 2, 3)
        grid = F.affine_grid(theta, [batch, 3, self.resolution, self.resolution], False)
        images = F.grid_sample(images, grid, mode="bilinear", align_corners=False)
        return _normalise(images, self.mean, self.std)

    def _crops_cut(self) -> bool:
        """False when every crop is the whole image: an area fraction of 1 only fits at ratio
        1, and the fallback (no fitting draw) is the largest centred crop, the whole image."""
        return self.crop_scale[0] < 1.0 or not self.crop_ratio[0] <= 1.0 <= self.crop_ratio[1]

    def _crop_and_flip(
        self, batch: int, side: int, generator: torch.Generator, crop: bool
    ) -> torch.Tensor:
        """(B, 2, 3) affine maps from output to input coordinates in [-1, 1]."""
        device = generator.device
        if not crop:
            box = torch.zeros(batch, 4, device=device)  # filled on the device: no copy
            box[:, 2:] = side
        else:
            box = sample_crops(batch, side, self.crop_scale, self.crop_ratio, generator)
        top, left, height, width = box.float().unbind(1)  # pixels
        # Pixels [left, left + width) span [-1 + 2·left/S, -1 + 2·(left + width)/S] in the
        # align_corners=False coordinates of grid_sample.
        flips = _draw_flips(batch, generator)
        sign = torch.where(flips, -1.0, 1.0) if self.flip else torch.ones(batch, device=device)
        theta = torch.zeros(batch, 2, 3, device=device)
        theta[:, 0, 0] = width / side * sign
        theta[:, 0, 2] = (2 * left + width) / side - 1
        theta[:, 1, 1] = height / side
        theta[:, 1, 2] = (2 * top + height) / side - 1
        return theta
