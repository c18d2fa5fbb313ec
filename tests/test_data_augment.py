"""to_model_input and TrainAugment: shapes, normalisation, flips, crops, MixUp, smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalelab.data import TrainAugment, to_model_input

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


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
    images, targets = aug(x, y, torch.Generator().manual_seed(0))
    torch.testing.assert_close(images, to_model_input(x, MEAN, STD, 16), atol=1e-5, rtol=0)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert torch.allclose(targets[0, 0], torch.tensor(0.7 + 0.03))
    assert torch.allclose(targets[0, 1], torch.tensor(0.03))


def test_flip_mirrors_the_image():
    aug = TrainAugment(10, MEAN, STD, 16, flip=True, crop_scale=(1.0, 1.0), mixup=0.0)
    x = _batch(64)
    images, _ = aug(x, torch.zeros(64, dtype=torch.long), torch.Generator().manual_seed(1))
    plain = to_model_input(x, MEAN, STD, 16)
    flipped = torch.isclose(images, plain.flip(3), atol=1e-4).flatten(1).all(1)
    same = torch.isclose(images, plain, atol=1e-4).flatten(1).all(1)
    assert torch.all(flipped ^ same) and 16 < int(flipped.sum()) < 48


def test_crops_zoom_in_and_upscale_to_the_model_resolution():
    aug = TrainAugment(10, MEAN, STD, 32, flip=False, crop_scale=(0.35, 0.35), mixup=0.0)
    x = _batch(4, 16)
    images, _ = aug(x, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 32, 32)
    # A 35% crop upscaled is smoother than the whole image upscaled.
    whole = to_model_input(x, MEAN, STD, 32)
    roughness = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert roughness(images) < 0.8 * roughness(whole)


def test_mixup_mixes_images_and_targets_with_one_weight():
    aug = TrainAugment(
        4, MEAN, STD, 16, flip=False, crop_scale=(1.0, 1.0), mixup=0.8, label_smoothing=0.0
    )
    x, y = _batch(), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    images, targets = aug(x, y, torch.Generator().manual_seed(3))
    assert torch.allclose(targets.sum(1), torch.ones(8))
    top = targets.max(1).values
    lam = float(top.max())
    assert 0.5 <= lam <= 1.0 and torch.all((targets > 0).sum(1) <= 2)
    again, _ = aug(x, y, torch.Generator().manual_seed(3))
    torch.testing.assert_close(images, again)  # the generator fixes every draw


def test_mixup_weights_follow_beta():
    aug = TrainAugment(
        2, MEAN, STD, 4, flip=False, crop_scale=(1.0, 1.0), mixup=0.8, label_smoothing=0.0
    )
    x, y = torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])
    g = torch.Generator().manual_seed(0)
    weights = []
    for _ in range(400):
        _, targets = aug(x, y, g)
        weights.append(float(targets[0, 0]))
    # Example 0's target is lam*e0 + (1-lam)*e1 whenever the permutation swaps the pair:
    # lam ~ Beta(0.8, 0.8) is symmetric about 1/2 with both ends well populated.
    w = np.asarray(weights)
    lam = w[w < 1.0 - 1e-6]
    assert len(lam) > 150
    assert abs(lam.mean() - 0.5) < 0.06 and (lam < 0.1).mean() > 0.08 and (lam > 0.9).mean() > 0.08
