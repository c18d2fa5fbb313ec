"""The embedded synthetic data: sizes, determinism, random access, image statistics, transfer."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.data import (
    DATA_TARGETS,
    downstream_source,
    pretraining_info,
    pretraining_source,
    synthetic,
)
from scalelab.errors import DataError


def test_sizes_and_classes():
    assert pretraining_info("synthetic", 16) == (1000, 1_200_000)
    heldout = pretraining_source("synthetic", "heldout", 16)
    assert (heldout.num_classes, len(heldout)) == (1000, 10_000)
    for target, classes in (("synthetic-cifar10", 10), ("synthetic-cifar100", 100)):
        train = downstream_source(target, "train", 32)
        test = downstream_source(target, "test", 32)
        assert (train.num_classes, len(train), len(test)) == (classes, 50_000, 10_000)
        np.testing.assert_array_equal(np.bincount(train.labels), [50_000 // classes] * classes)
    assert DATA_TARGETS[:2] == ("synthetic-cifar10", "synthetic-cifar100")


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_images_are_a_pure_function_of_the_index(resolution):
    source = pretraining_source("synthetic", "train", resolution)
    indices = np.array([1_199_999, 5, 640_000, 5])
    images = source.take(indices)
    assert images.shape == (4, resolution, resolution, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[1], images[3])
    np.testing.assert_array_equal(images[0], source.take(np.array([1_199_999]))[0])
    fresh = synthetic.SyntheticSource(
        "synthetic", "pretrain", "train", 1000, 1_200_000, resolution, seed=0
    )
    np.testing.assert_array_equal(fresh.take(indices), images)
    other_seed = synthetic.SyntheticSource(
        "synthetic", "pretrain", "train", 1000, 1_200_000, resolution, seed=1
    )
    assert not np.array_equal(other_seed.take(indices), images)


def test_splits_and_targets_are_different_images():
    train = pretraining_source("synthetic", "train", 16).take(np.arange(50))
    heldout = pretraining_source("synthetic", "heldout", 16).take(np.arange(50))
    target = downstream_source("synthetic-cifar100", "train", 16).take(np.arange(50))
    assert not np.array_equal(train, heldout) and not np.array_equal(train, target)


def test_lower_resolutions_are_low_passes_of_higher_ones():
    big = pretraining_source("synthetic", "train", 64).take(np.arange(8)) / 255.0
    small = pretraining_source("synthetic", "train", 16).take(np.arange(8)) / 255.0
    pooled = big.reshape(8, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    # Block averages of the 64-pixel image track the 16-pixel one (same scene, less detail).
    corr = np.corrcoef(pooled.ravel(), small.ravel())[0, 1]
    assert corr > 0.8


def test_natural_image_statistics():
    images = pretraining_source("synthetic", "train", 64).take(np.arange(256)) / 255.0
    luminance = images.mean(-1) - images.mean(-1).mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(luminance)) ** 2).mean(0)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(64, 1 / 64), np.fft.fftfreq(64, 1 / 64)))
    band = (k >= 2) & (k <= 20)
    slope = np.polyfit(np.log(k[band]), np.log(power[band]), 1)[0]
    assert -2.6 < slope < -1.4  # natural images: power ~ 1/k^2
    channels = images.reshape(-1, 3).T
    assert np.corrcoef(channels)[0, 1] > 0.5 and np.corrcoef(channels)[1, 2] > 0.5
    source = pretraining_source("synthetic", "train", 64)
    assert all(0.4 < m < 0.6 for m in source.mean) and all(0.1 < s < 0.3 for s in source.std)


def test_classes_are_not_linearly_separable_in_pixels_but_are_in_latents():
    """The premise of the demo: pixels hide the class, the latent factors reveal it."""
    train = downstream_source("synthetic-cifar10", "train", 16)
    test = downstream_source("synthetic-cifar10", "test", 16)
    idx_train, idx_test = np.arange(3000), np.arange(1000)

    def ridge_error(f_train, f_test):
        mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
        a, b = (f_train - mu) / sd, (f_test - mu) / sd
        targets = np.eye(10)[train.labels[idx_train]]
        w = np.linalg.solve(a.T @ a + 10.0 * np.eye(a.shape[1]), a.T @ targets)
        return float(((b @ w).argmax(1) != test.labels[idx_test]).mean())

    pixels = ridge_error(
        train.take(idx_train).reshape(3000, -1) / 255.0,
        test.take(idx_test).reshape(1000, -1) / 255.0,
    )
    latents = ridge_error(train.latents(idx_train), test.latents(idx_test))
    assert latents < 0.08 and pixels > 0.3


def test_unsupported_resolution_and_split():
    with pytest.raises(DataError) as err:
        pretraining_source("synthetic", "train", 24)
    assert str(err.value) == (
        "synthetic data renders at 16, 32, 64 pixels, not 24; pick one of those resolutions"
    )
    with pytest.raises(DataError, match=r"unknown split 'test'; use one of train, heldout"):
        pretraining_source("synthetic", "test", 16)


def test_probe_targets_are_rendered_once_then_read_from_the_cache(tmp_path, monkeypatch) -> None:
    from scalelab.data import downstream_source
    from scalelab.data.synthetic import _render_examples

    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path))
    source = downstream_source("synthetic-cifar10", "test", 16)
    picks = np.array([3, 9_999, 0, 512])
    first = source.take(picks)
    (cached,) = (tmp_path / "synthetic").glob("synthetic-cifar10-test-seed0-r16-*.npy")
    assert np.load(cached, mmap_mode="r").shape == (10_000, 16, 16, 3)
    again = downstream_source("synthetic-cifar10", "test", 16).take(picks)
    direct = _render_examples(source.seed, source._split, 16, picks)
    np.testing.assert_array_equal(first, direct)
    np.testing.assert_array_equal(again, direct)


def test_poses_follow_the_zipf_law_the_world_states():
    """The tail knob: pose k is drawn with p_k = k^-s / H, checked against that closed form."""
    source = pretraining_source("synthetic", "train", 16)
    poses = source.poses(np.arange(200_000))
    counts = np.bincount(poses, minlength=synthetic.POSES)
    k = np.arange(1, synthetic.POSES + 1)
    expected = k**-synthetic.POSE_ZIPF / np.sum(k**-synthetic.POSE_ZIPF)
    np.testing.assert_allclose(synthetic.pose_frequencies(), expected)
    # Binomial noise: within 5 standard deviations for every pose.
    std = np.sqrt(200_000 * expected * (1 - expected))
    assert np.all(np.abs(counts - 200_000 * expected) < 5 * std + 1)
    head = slice(0, 20)
    slope = np.polyfit(np.log(k[head]), np.log(counts[head]), 1)[0]
    assert abs(slope + synthetic.POSE_ZIPF) < 0.1
    # The downstream targets are seen through the same poses.
    target = downstream_source("synthetic-cifar100", "train", 16).poses(np.arange(50_000))
    assert abs(np.mean(target == 0) - expected[0]) < 0.01


def test_the_tail_knob_is_read_from_the_dataset_name():
    assert synthetic.pose_zipf_of("synthetic") == synthetic.POSE_ZIPF
    assert synthetic.pose_zipf_of("synthetic:pose_zipf=2") == 2.0
    assert synthetic.canonical_dataset(synthetic.POSE_ZIPF) == "synthetic"
    assert synthetic.canonical_dataset(2.0) == "synthetic:pose_zipf=2"
    with pytest.raises(DataError, match="^dataset 'synthetic:pose_zipf=many': pose_zipf must be"):
        pretraining_source("synthetic:pose_zipf=many", "train", 16)


def test_the_tail_knob_sets_the_poses_of_every_set_and_nothing_else():
    """pose_zipf = 2: p_k = k^-2 / H against that closed form, in pretraining and downstream;
    an image differs from the default world's exactly where its pose does."""
    k = np.arange(1, synthetic.POSES + 1)
    expected = k**-2.0 / np.sum(k**-2.0)
    source = pretraining_source("synthetic:pose_zipf=2", "train", 16)
    counts = np.bincount(source.poses(np.arange(100_000)), minlength=synthetic.POSES)
    std = np.sqrt(100_000 * expected * (1 - expected))
    assert np.all(np.abs(counts - 100_000 * expected) < 5 * std + 1)
    target = downstream_source("synthetic-cifar100", "test", 16, dataset="synthetic:pose_zipf=2")
    assert abs(np.mean(target.poses(np.arange(10_000)) == 0) - expected[0]) < 0.02
    default = pretraining_source("synthetic", "train", 16)
    picks = np.arange(512)
    moved = default.poses(picks) != source.poses(picks)
    assert 0 < moved.sum() < len(picks)
    differs = (default.take(picks) != source.take(picks)).any(axis=(1, 2, 3))
    np.testing.assert_array_equal(differs, moved)


def test_a_pose_is_a_view_that_pixels_do_not_share():
    """Same latent, two poses: unrelated pixels; same latent, same pose: the same picture up to
    jitter and clutter, so a network must learn each pose's view of the object on its own."""
    rng = np.random.default_rng(0)
    latents = np.repeat(rng.standard_normal((1, synthetic.LATENT_DIM)), 3, axis=0)
    nuisance = np.full((3, synthetic._NUM_DRAWS - synthetic.LATENT_DIM), 0.5)
    nuisance[:, 0] = [0.0, 0.0, 0.999]  # pose 0 twice, then a rare pose
    nuisance[1, 1:3] = 0.75  # the second image jittered: another sub-pixel shift
    nuisance[:, 1 + 2 + 2 + 4 : 1 + 2 + 2 + 4 + 2] = 0.0  # no clutter: the object alone
    images = synthetic.render(0, 16, latents, nuisance).reshape(3, -1) / 255.0
    centred = images - images.mean(1, keepdims=True)
    corr = np.corrcoef(centred)
    assert corr[0, 1] > 0.9 and abs(corr[0, 2]) < 0.3
