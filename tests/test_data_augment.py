"""to_model_input and TrainAugment: shapes, normalisation, flips, crops, MixUp, smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from scalelab.data import TrainAugment, to_model_input
from scalelab.data.augment import CROP_RATIO, CROP_SCALE, sample_crops

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
HOST = torch.Generator().manual_seed(99)  # MixUp's CPU generator


def _batch(size: int = 8, side: int = 16) -> torch.Tensor:
    return torch.randint(
        0, 256, (size, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_model_input_normalises_each_channel_with_its_stats():
    x = _batch()
    out = to_model_input(x, MEAN, STD, 16)
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(("side", "resolution"), [(32, 64), (96, 64), (16, 16)])
def test_model_input_resizes_to_the_model_resolution(side, resolution):
    x = torch.full((2, 3, side, side), 128, dtype=torch.uint8)
    out = to_model_input(x, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), resolution)
    assert out.shape == (2, 3, resolution, resolution)
    # A constant image stays constant through any resize: (128/255 - 0.5) / 0.25.
    torch.testing.assert_close(out, torch.full_like(out, (128 / 255 - 0.5) / 0.25))


def test_without_crop_flip_mixup_it_is_plain_normalisation_and_smoothing():
    aug = TrainAugment(10, MEAN, STD, 16, flip=False, crop_scale=(1.0, 1.0), mixup=0.0)
    x, y = _batch(), torch.arange(8) % 10
    images, targets = aug(x, y, torch.Generator().manual_seed(0), HOST)
    torch.testing.assert_close(images, to_model_input(x, MEAN, STD, 16), atol=1e-5, rtol=0)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert torch.allclose(targets[0, 0], torch.tensor(0.7 + 0.03))
    assert torch.allclose(targets[0, 1], torch.tensor(0.03))


def test_flip_mirrors_the_image():
    aug = TrainAugment(10, MEAN, STD, 16, flip=True, crop_scale=(1.0, 1.0), mixup=0.0)
    x = _batch(64)
    images, _ = aug(x, torch.zeros(64, dtype=torch.long), torch.Generator().manual_seed(1), HOST)
    plain = to_model_input(x, MEAN, STD, 16)
    flipped = torch.isclose(images, plain.flip(3), atol=1e-4).flatten(1).all(1)
    same = torch.isclose(images, plain, atol=1e-4).flatten(1).all(1)
    assert torch.all(flipped ^ same) and 16 < int(flipped.sum()) < 48


def test_crops_zoom_in_and_upscale_to_the_model_resolution():
    aug = TrainAugment(10, MEAN, STD, 32, flip=False, crop_scale=(0.2, 0.2), mixup=0.0)
    x = _batch(4, 16)
    images, _ = aug(x, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0), HOST)
    assert images.shape == (4, 3, 32, 32)
    # A 20% crop upscaled is smoother than the whole image upscaled.
    whole = to_model_input(x, MEAN, STD, 32)
    roughness = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert roughness(images) < 0.8 * roughness(whole)


def test_mixup_mixes_images_and_targets_with_one_weight():
    aug = TrainAugment(
        4, MEAN, STD, 16, flip=False, crop_scale=(1.0, 1.0), mixup=0.8, label_smoothing=0.0
    )
    x, y = _batch(), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    images, targets = aug(x, y, torch.Generator().manual_seed(3), torch.Generator().manual_seed(4))
    assert torch.allclose(targets.sum(1), torch.ones(8))
    top = targets.max(1).values
    lam = float(top.max())
    assert 0.5 <= lam <= 1.0 and torch.all((targets > 0).sum(1) <= 2)
    again, _ = aug(x, y, torch.Generator().manual_seed(3), torch.Generator().manual_seed(4))
    torch.testing.assert_close(images, again)  # the generator fixes every draw


def test_mixup_weights_follow_beta():
    aug = TrainAugment(
        2, MEAN, STD, 4, flip=False, crop_scale=(1.0, 1.0), mixup=0.8, label_smoothing=0.0
    )
    x, y = torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])
    g, host = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    weights = []
    for _ in range(400):
        _, targets = aug(x, y, g, host)
        weights.append(float(targets[0, 0]))
    # Example 0's target is lam*e0 + (1-lam)*e1 whenever the permutation swaps the pair:
    # lam ~ Beta(0.8, 0.8) is symmetric about 1/2 with both ends well populated.
    w = np.asarray(weights)
    lam = w[w < 1.0 - 1e-6]
    assert len(lam) > 150
    assert abs(lam.mean() - 0.5) < 0.06 and (lam < 0.1).mean() > 0.08 and (lam > 0.9).mean() > 0.08


def _ffcv_crops(side: int, scale: tuple[float, float], draws: int, seed: int) -> np.ndarray:
    """(draws, 4) boxes (top, left, height, width) from FFCV's own per-image sampler."""
    from ffcv.fields.rgb_image import get_random_crop  # the authors' RandomResizedCrop decoder

    np.random.seed(seed)  # get_random_crop draws from numpy's global RNG
    ratio = np.array(CROP_RATIO)
    return np.array([get_random_crop(side, side, scale, ratio) for _ in range(draws)])


# Whole-image boxes left: drawn areas that round to the full side (fallbacks: ~0.14^10).
@pytest.mark.parametrize(("side", "whole_at_most"), [(16, 0.015), (64, 0.001)])
def test_crop_sampler_draws_ffcvs_distribution(side, whole_at_most):
    # 100k draws each. Tolerance: two-sample KS on the crop areas and on the widths at
    # p = 0.001 (D < 1.95·sqrt(2/n) = 0.0087), the uncropped fraction within 5 standard errors.
    n = 100_000
    ours = sample_crops(n, side, CROP_SCALE, CROP_RATIO, torch.Generator().manual_seed(0))
    ours = ours.numpy()
    ref = _ffcv_crops(side, CROP_SCALE, n, seed=0)
    critical = 1.95 * np.sqrt(2 / n)
    assert ks_2samp(ours[:, 2] * ours[:, 3], ref[:, 2] * ref[:, 3]).statistic < critical  # areas
    assert ks_2samp(ours[:, 3], ref[:, 3]).statistic < critical  # widths
    uncropped = lambda boxes: np.mean((boxes[:, 2] == side) & (boxes[:, 3] == side))  # noqa: E731
    p = uncropped(ref)
    assert abs(uncropped(ours) - p) <= 5 * np.sqrt(max(p, 1 / n) * (1 - p) / n)
    assert uncropped(ours) < whole_at_most  # one draw left 20% whole at scale 0.35, 14% at 0.08
    # Every box lies inside the image.
    top, left, height, width = ours.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= side).all() and (left + width <= side).all()


def test_crop_fallback_is_the_centred_whole_image_when_no_try_fits():
    # Areas above the image at every try (scale (1, 1), ratio far from 1): torchvision's fallback.
    boxes = sample_crops(100, 64, (1.0, 1.0), (2.0, 3.0), torch.Generator().manual_seed(0))
    # in_ratio 1 < min ratio 2: full width, height round(64 / 2), centred vertically.
    assert (boxes == torch.tensor([16, 0, 32, 64])).all()


def test_a_crop_box_is_the_pixels_it_names():
    # A 1:1 resampling of an 8x8 box equals slicing those pixels out of the image.
    side = 16
    x = _batch(64, side)
    aug = TrainAugment(10, (0, 0, 0), (1, 1, 1), 8, flip=False, crop_scale=(0.25, 0.25), mixup=0)
    aug.crop_ratio = (1.0, 1.0)  # 8x8 crops exactly
    images = aug.images(x, torch.Generator().manual_seed(5))
    boxes = sample_crops(64, side, (0.25, 0.25), (1.0, 1.0), torch.Generator().manual_seed(5))
    for image, (top, left, h, w), original in zip(images, boxes.tolist(), x, strict=True):
        expected = original[:, top : top + h, left : left + w].float() / 255
        torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_without_crop_the_loaders_crop_is_only_flipped_and_resized():
    # crop=False: FFCV's decoder cropped already (an aspect-kept beton); no second crop.
    aug = TrainAugment(10, MEAN, STD, 16, flip=False, crop_scale=(0.08, 0.08), mixup=0.0)
    x = _batch(8, 16)
    images = aug.images(x, torch.Generator().manual_seed(0), crop=False)
    torch.testing.assert_close(images, to_model_input(x, MEAN, STD, 16), atol=1e-5, rtol=0)
    cropped = aug.images(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(cropped, images, atol=1e-3)


@pytest.mark.parametrize("crop", [True, False])
def test_whole_image_crops_at_the_model_side_are_only_flipped(crop):
    # Area fraction 1 at the model's side: every box is the whole image, so the image is the
    # normalised original or its mirror, never resampled.
    aug = TrainAugment(10, MEAN, STD, 16, crop_scale=(1.0, 1.0), mixup=0.0)
    x = _batch(64, 16)
    images = aug.images(x, torch.Generator().manual_seed(0), crop=crop)
    plain = to_model_input(x, MEAN, STD, 16)
    mirrored = plain.flip(-1)
    same = (images - plain).flatten(1).abs().amax(1) < 1e-6
    flipped = (images - mirrored).flatten(1).abs().amax(1) < 1e-6
    assert bool((same | flipped).all())
    assert 16 <= int(flipped.sum()) <= 48  # flips drawn with probability 1/2


def test_a_whole_area_crop_outside_the_ratio_range_is_still_cut():
    # Ratio range excluding 1: the fallback is the largest centred crop of such a ratio.
    aug = TrainAugment(10, MEAN, STD, 16, flip=False, crop_scale=(1.0, 1.0), mixup=0.0,
                       crop_ratio=(1.5, 2.0))  # fmt: skip
    x = _batch(8, 16)
    images = aug.images(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(images, to_model_input(x, MEAN, STD, 16), atol=1e-3)
