"""The embedded synthetic dataset: natural-image-like pictures rendered from latent factors.

One fixed random "world" (drawn from ``seed``) renders a latent vector z into an image:

    h = tanh(W1 z + b1)                      hidden appearance code          (n, HIDDEN_DIM)
    object = G h                             Fourier coefficients, |k| <= OBJECT_MAX_FREQ
    image = irfft2(shift(object) + clutter)  in opponent colour space, mixed into RGB

Amplitudes fall as 1/|k| (a power spectrum ~ 1/|k|^2, like natural images) and the three
colour channels are correlated (a strong luminance channel mixed into all of R, G, B).

A class is a prototype in latent space; an example is ``z = prototype + spread * eps``.
The pretraining set and the CIFAR-like downstream sets draw their prototypes independently
but render through the same world, so they share latent structure without sharing classes.
What makes the data worth pretraining on is the nuisance, and what makes its learning curves
power laws is the nuisance's long tail. Each image shows the object in one of POSES poses, a
fixed random phase pattern over its Fourier coefficients (plus a small sub-pixel jitter), so
raw pixels are a poor linear code of z and one pose's view shares nothing with another's;
pose k is drawn with Zipf frequency p_k ~ k^-POSE_ZIPF, in pretraining and downstream alike.
The object is laid over two translated clutter textures with random weights and
colour-jittered. An MLP pretrained on the 1,000 classes learns to read z through the
frequent poses first and through rarer ones only with more examples and steps, so the probe
error still to gain is the tail mass of the unlearned poses: the mechanism of the
quantization model (Michaud et al. 2023) and of Hutter's (2021) learning-curve theory.

What was tried, and measured (ridge probe on the pre-logits, 16x16, LION):
- 8 uniformly drawn poses that were translations (the previous world), B-1/Wi-64 ...
  B-4/Wi-256, N 8k...64k, T 1...8, batch 256, lr 3e-4: a learning onset, not a law. The
  frontier stays near the random-init error for a decade, falls from 84% to 24% in under two
  decades and flattens (alpha = 4.0 [0.51, 7.87] on synthetic-cifar100): 8 templates are
  learned all at once, and then there is nothing left to learn.
- Before that: B-4/Wi-256, Adam 1e-3, batch 256, flips only (synthetic-cifar100, 10k train /
  5k test): 79.5% error at random init; 6 epochs on 5k pretraining images 78.8%, on 20k
  images 73.1% after 2 epochs and 56.0% after 6. The paper's full augmentation
  (random-resized crops down to 35%, MixUp 0.8) left 76.5% at 20k x 6 epochs: zooming
  changes every frequency of the object, and a few CPU epochs cannot learn that invariance.
  Continuous translation by up to a quarter of the image was not learnable in a CPU demo's
  budget either.
- With the Zipf poses (128 poses, POSE_ZIPF = 1.5), N = 8k and 64k, T 1...8:
  at batch 256 and lr 3e-4, B-4/Wi-256 on N = 8k (8 images per class, 31 steps an epoch)
  stays within 2 points of its random init after 8 epochs and overfits 64k after 4; batch
  64 at the same lr trains worse per epoch (B-4/Wi-256 on 64k, T = 1: 63.0% against 59.2%);
  lr 1e-3 makes B-4/Wi-256 diverge (loss 9.6) but trains B-1/Wi-64 better (42.7% against
  46.3% at 64k x 8). Small models (Wi-32...Wi-192) at batch 128, lr 1e-3, on N >= 16k keep
  falling without a plateau: the first demo grid. Its frontier (two seeds, 1,000 resamples) is
  a power law over 2.1 decades, R^2 0.995 / 0.999 (synthetic-cifar10 / -100), alpha 0.90
  [0.65, 1.09] / 0.84 [0.72, 1.00]; the bend b sits at 1.7x / 1.9x the first frontier point,
  and E_inf (0.42 / 0.46) stays close to the lowest error reached: the alpha interval is
  wide because alpha and E_inf trade off over two decades.
- The same world, a grid moved past the onset: N = 16k left out (B-1/Wi-32 there ends at
  99% held-out error: that first frontier point put b inside the data) and N = 256k added,
  B-2/Wi-192 (never on the frontier) replaced by B-2/Wi-64 so that E(P) keeps four sizes at
  the largest N: b = 0 on both targets, alpha 0.46 [0.43, 0.51] / 0.41 [0.38, 0.42], R^2
  0.992 / 0.991 over 2.08 decades, 4 model sizes and 3 dataset sizes on the frontier. With
  B-1/Wi-96 as the fourth size instead, it tied B-2/Wi-128 on synthetic-cifar10 at 256k, took
  the frontier's top point and left 1.78 decades (alpha 0.27 [0.22, 0.57]).
- The demo grid since 2026-12-03: widths that double at one depth (B-1/Wi-16 ... Wi-128),
  N = 32k ... 256k and the three smaller models on 512k too, the probe on 20k / 10k images:
  b below the first frontier point, alpha 0.41 [0.34, 0.48] / 0.36 [0.34, 0.39], R^2
  0.995 / 0.993 over 2.19 decades, 3 model and 5 dataset sizes on the frontier. Widths 1.5x
  apart (16, 24, ..., 96) widened alpha's interval to 0.3 or more (near-tied sizes swap places
  on the frontier between resamples); B-2/Wi-128 as the fourth size (probing like B-1/Wi-64)
  pulled E(P, N)'s P* exponent to 0.16 against Approach 1's 0.30.
- That grid at two learning rates (1e-3 alone trained B-1/Wi-128 worse than B-1/Wi-64; 3e-4
  trains every width better from N = 256k on): b = 0, alpha 0.24 [0.18, 0.26] / 0.20 [0.18,
  0.21], R^2 0.997 / 0.995 over 2.28 decades, 4 model and 5 dataset sizes on the frontier,
  alpha_P 1.03 / 0.98 and alpha_N 0.33 / 0.28 (the paper: about 1 and 0.35). Approach 1
  still gives P* ~ C^0.30, E(P, N) C^0.22 / C^0.20 (its E runs to 0 on synthetic-cifar100).
  (Approach 1 then fitted the frontier's runs; every 0.30 above is that reading.) Locating
  P* between the sizes instead (analysis/chinchilla.py) gives C^0.13 [0.06, 0.19] / C^0.16
  [0.13, 0.18] on the same runs, E(P, N) C^0.17 [0.13, 0.25] / C^0.21 [0.17, 0.24] on this
  session's machine: within each other's intervals on synthetic-cifar10, not on -100.
- The knob, on the first of those grids: POSE_ZIPF = 1.1 (a heavier tail, every pose rarer)
  delays the learning and brings the onset back (alpha 2.5 / 3.7, b at 20x / 33x the first
  point, R^2 0.96 / 0.97); POSE_ZIPF = 2.0 (the first pose 61% of images) learns sooner but
  saturates: alpha 1.17 [0.94, 2.32] / 0.98 [0.45, 1.07], the frontier on 2 model sizes for
  synthetic-cifar10, no interval for E(P). 1.5 is kept.
  A grid turns the knob with dataset = "synthetic:pose_zipf=s" (pretraining and targets
  alike). B-1/Wi-64 on N = 32k ... 512k, T = 1, two seeds, synthetic-cifar100: alpha_N of
  E(N) 0.11 [0.11, 0.12], 0.15 [0.14, 0.15], 0.54 [0.50, 0.58] for s = 1.25, 1.5, 2, in
  Hutter's order ((s - 1)/s: 0.2, 0.33, 0.5); tests/test_tail_knob.py (slow) checks it.

Every image is a pure function of (seed, split, index): the per-image randomness comes from
a counter-based hash, so ``take`` renders exactly the images asked for and nothing else; a
1.2M-image set costs only its labels array until someone looks at it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtri

from scalelab.data.subsets import cache_dir, checked_indices
from scalelab.errors import DataError

# Cached renderings are keyed by this file's contents: any change to the generator below
# invalidates them.
_VERSION = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12]
RESOLUTIONS = (16, 32, 64)
MAX_RESOLUTION = 64
LATENT_DIM = 32
HIDDEN_DIM = 64
OBJECT_MAX_FREQ = 12  # cycles per image; each resolution keeps what is below its Nyquist
CLUTTER_BANK = 256
# Within-class std of z around the prototype (prototypes are N(0, I)). The CIFAR-10-like
# classes are broad (as "cat" or "truck" are): with 10 narrow classes, raw pixels would
# already separate them; broad ones stay linear in z but not in pixels.
CLASS_SPREAD = {"pretrain": 0.7, "synthetic-cifar100": 0.7, "synthetic-cifar10": 1.5}
# Poses: each is its own fixed random phase pattern over the object's Fourier coefficients
# (a view of the object that shares nothing with another pose's), drawn per image with Zipf
# frequencies p_k ~ k^-POSE_ZIPF: the tail knob. A network learns to read z through the
# frequent poses first and through rarer ones only with more examples and compute, so the
# probe error left over is the tail mass of unlearned poses (Michaud et al. 2023, Hutter 2021).
POSES = 128
POSE_ZIPF = 1.5
# The knob from a grid: dataset = "synthetic:pose_zipf=2" (plain "synthetic" is POSE_ZIPF).
DATASET = "synthetic"
POSE_ZIPF_OPTION = "pose_zipf"
MAX_SHIFT = 0.02  # sub-pixel jitter of the object, as a fraction of the image side
OBJECT_GAIN = 1.0
CLUTTER_GAIN = 0.8
# Opponent (luminance, red-green, blue-yellow) to RGB; chroma carries less power than
# luminance, as in natural images, which correlates the RGB channels.
OPPONENT_TO_RGB = np.array([[1.0, 1.0, -0.5], [1.0, -1.0, -0.5], [1.0, 0.0, 1.0]])
CHANNEL_AMPLITUDE = np.array([1.0, 0.45, 0.35])
PIXEL_STD = 0.2  # target std of a pixel in [0, 1] units at the largest resolution
RENDER_BATCH = 512  # images rendered at once: bounds the (n, 2, 3, R, R/2+1) clutter buffer

# Split sizes: >= 1,000 classes and >= 1,000,000 pretraining examples, CIFAR-shaped targets.
PRETRAIN_CLASSES = 1000
PRETRAIN_PER_CLASS = {"train": 1200, "heldout": 10}
DOWNSTREAM_CLASSES = {"synthetic-cifar10": 10, "synthetic-cifar100": 100}
DOWNSTREAM_SIZES = {"train": 50_000, "test": 10_000}

# Per-image random draws, in this order, from one hashed stream per image.
_DRAWS = {
    "eps": LATENT_DIM,
    "pose": 1,
    "shift": 2,
    "clutter_id": 2,
    "clutter_shift": 4,
    "clutter_weight": 2,
    "gain": 3,
    "brightness": 3,
    "contrast": 1,
}
_NUM_DRAWS = sum(_DRAWS.values())
_POSE_COLUMN = 0  # "pose" comes first among the nuisance draws (after eps)


def pose_frequencies(exponent: float = POSE_ZIPF) -> np.ndarray:
    """(POSES,) the Zipf frequencies p_k = k^-exponent / sum_j j^-exponent, k = 1..POSES."""
    weights = np.arange(1, POSES + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def is_synthetic(dataset: str) -> bool:
    """Whether a grid's ``dataset`` names the embedded world (with or without options)."""
    return dataset.partition(":")[0] == DATASET


def pose_zipf_of(dataset: str) -> float:
    """The pose tail exponent of a synthetic dataset name: "synthetic" (POSE_ZIPF) or
    "synthetic:pose_zipf=X" with X > 0. Raises DataError on any other option or value."""
    if not is_synthetic(dataset):
        raise DataError(f"dataset {dataset!r} is not the embedded synthetic data")
    option = dataset.partition(":")[2]
    if not option:
        return POSE_ZIPF
    key, _, value = option.partition("=")
    fix = (
        f"write {DATASET!r} or '{DATASET}:{POSE_ZIPF_OPTION}=X' with X > 0 (default {POSE_ZIPF:g})"
    )
    if key != POSE_ZIPF_OPTION:
        raise DataError(f"dataset {dataset!r}: unknown option {key!r}; {fix}")
    try:
        exponent = float(value)
    except ValueError:
        exponent = float("nan")
    if not np.isfinite(exponent) or exponent <= 0:
        raise DataError(f"dataset {dataset!r}: {POSE_ZIPF_OPTION} must be a number > 0; {fix}")
    return exponent


def canonical_dataset(exponent: float) -> str:
    """The dataset name of a pose tail: "synthetic" for POSE_ZIPF, so that a grid that spells
    out the default finds the jobs of one that does not."""
    return DATASET if exponent == POSE_ZIPF else f"{DATASET}:{POSE_ZIPF_OPTION}={exponent:g}"


def _poses(nuisance: np.ndarray, exponent: float) -> np.ndarray:
    """(n,) pose of each image (0 = most frequent) from its nuisance draws (n, D)."""
    cdf = np.cumsum(pose_frequencies(exponent))
    return np.minimum(np.searchsorted(cdf, nuisance[:, _POSE_COLUMN]), POSES - 1)


@dataclass(frozen=True)
class World:
    """The fixed random generator shared by every synthetic set with the same seed.

    Fourier coefficients are stored in RGB (the opponent-to-RGB mix is linear, so it is
    applied once here rather than per image).
    """

    seed: int
    w1: torch.Tensor  # (HIDDEN_DIM, LATENT_DIM)
    b1: torch.Tensor  # (HIDDEN_DIM,)
    object_freqs: np.ndarray  # (F, 2) integer (ky, kx), 0 < |k| <= OBJECT_MAX_FREQ, kx >= 0
    object_map: np.ndarray  # (HIDDEN_DIM, 3, F) complex: h -> RGB object coefficients
    clutter: np.ndarray  # (CLUTTER_BANK, 3, MAX, MAX//2+1) complex, rfft2 layout, RGB
    pose_phases: np.ndarray  # (POSES, F) complex unit phases: one view of the object per pose
    pixel_scale: float  # field units -> [0, 1] pixel units


def _rng(seed: int, *tags: str) -> np.random.Generator:
    digest = hashlib.blake2b("/".join(("scalelab-synthetic", str(seed), *tags)).encode())
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "little"))


def _stream_key(seed: int, *tags: str) -> np.uint64:
    digest = hashlib.blake2b("/".join(("scalelab-stream", str(seed), *tags)).encode())
    return np.uint64(int.from_bytes(digest.digest()[:8], "little"))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based generator: independent 64-bit words from consecutive counters."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def per_image_uniforms(key: np.uint64, indices: np.ndarray, count: int) -> np.ndarray:
    """(n, count) uniforms in (0, 1), a pure function of (key, index): random access."""
    counters = indices.astype(np.uint64)[:, None] * np.uint64(count) + np.arange(
        count, dtype=np.uint64
    )
    with np.errstate(over="ignore"):
        words = _splitmix64(counters + key)
    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def _power_law_envelope(ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    radius = np.hypot(ky, kx)
    return np.where(radius > 0, 1.0 / np.maximum(radius, 1.0), 0.0)


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


@functools.lru_cache(maxsize=4)
def world(seed: int = 0) -> World:
    """The world for ``seed``: built in well under a second, then cached."""
    rng = _rng(seed, "world")
    w1 = rng.standard_normal((HIDDEN_DIM, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    b1 = 0.5 * rng.standard_normal(HIDDEN_DIM)

    ky = np.fft.fftfreq(MAX_RESOLUTION, 1.0 / MAX_RESOLUTION).astype(int)[:, None]
    kx = np.arange(MAX_RESOLUTION // 2 + 1)[None, :]
    ky, kx = np.broadcast_arrays(ky, kx)  # (MAX, MAX//2+1) each
    radius = np.hypot(ky, kx)
    keep = (radius > 0) & (radius <= OBJECT_MAX_FREQ)
    object_freqs = np.stack([ky[keep], kx[keep]], axis=1)
    envelope = _power_law_envelope(object_freqs[:, 0], object_freqs[:, 1])
    opponent = (
        _complex_normal(rng, (HIDDEN_DIM, 3, len(object_freqs)))
        * CHANNEL_AMPLITUDE[None, :, None]
        * envelope
        / np.sqrt(HIDDEN_DIM)
    )
    object_map = np.einsum("co,hof->hcf", OPPONENT_TO_RGB, opponent)
    clutter_opponent = (
        _complex_normal(rng, (CLUTTER_BANK, 3, *ky.shape))
        * CHANNEL_AMPLITUDE[None, :, None, None]
        * _power_law_envelope(ky, kx)
    )
    clutter = np.einsum("co,bokl->bckl", OPPONENT_TO_RGB, clutter_opponent)
    # A real field's pixel variance is twice the summed |coefficient|^2 over the half-plane.
    object_var = 2.0 * np.sum(np.abs(object_map) ** 2) / 3 * 0.4  # E[tanh(.)^2] ~ 0.4
    clutter_var = 2.0 * np.sum(np.abs(clutter) ** 2) / (3 * CLUTTER_BANK)
    field_var = OBJECT_GAIN**2 * object_var + CLUTTER_GAIN**2 * clutter_var
    return World(
        seed=seed,
        w1=torch.from_numpy(w1).float(),
        b1=torch.from_numpy(b1).float(),
        object_freqs=object_freqs,
        object_map=object_map,
        clutter=clutter,
        pose_phases=np.exp(2j * np.pi * rng.uniform(0.0, 1.0, (POSES, len(object_freqs)))),
        pixel_scale=float(PIXEL_STD / np.sqrt(field_var)),
    )


@dataclass(frozen=True)
class _Grid:
    """The world cut to one resolution's rfft2 grid: only frequencies below its Nyquist."""

    object_real: torch.Tensor  # (HIDDEN_DIM, 3*F_R*2) float: h -> (re, im) of coefficients
    pose_phases: torch.Tensor  # (POSES, 1, F_R) complex64: the visible part of each pose
    object_rows: torch.Tensor  # (F_R,) row of each visible object frequency in the grid
    object_cols: torch.Tensor  # (F_R,) its column
    clutter: torch.Tensor  # (CLUTTER_BANK, 3, R, R/2+1) complex64
    ky: torch.Tensor  # (R,) cycles per image of each grid row
    kx: torch.Tensor  # (R/2+1,) cycles per image of each grid column


@functools.lru_cache(maxsize=8)
def _grid(seed: int, resolution: int) -> _Grid:
    w = world(seed)
    half = resolution // 2
    fy, fx = w.object_freqs[:, 0], w.object_freqs[:, 1]
    visible = (np.abs(fy) < half) & (fx < half)
    object_map = torch.from_numpy(w.object_map[:, :, visible]).to(torch.complex64)
    full_ky = np.fft.fftfreq(MAX_RESOLUTION, 1.0 / MAX_RESOLUTION).astype(int)
    ky = np.fft.fftfreq(resolution, 1.0 / resolution).astype(int)
    rows = np.array([np.flatnonzero(full_ky == k)[0] for k in ky])
    clutter = torch.from_numpy(w.clutter[:, :, rows, : half + 1]).to(torch.complex64)
    # The Nyquist row and column stay empty, as for the object: the image at a lower
    # resolution is then a clean low-pass of the one at a higher resolution.
    clutter[:, :, half, :] = 0
    clutter[:, :, :, half] = 0
    return _Grid(
        object_real=torch.view_as_real(object_map).reshape(HIDDEN_DIM, -1).contiguous(),
        pose_phases=torch.from_numpy(w.pose_phases[:, None, visible]).to(torch.complex64),
        object_rows=torch.from_numpy(fy[visible] % resolution),
        object_cols=torch.from_numpy(fx[visible]),
        clutter=clutter,
        ky=torch.from_numpy(ky).float(),
        kx=torch.arange(half + 1).float(),
    )


def prototypes(seed: int, class_set: str, num_classes: int) -> np.ndarray:
    """(num_classes, LATENT_DIM) class prototypes of one class set, N(0, I)."""
    return _rng(seed, "prototypes", class_set).standard_normal((num_classes, LATENT_DIM))


def _translation(grid: _Grid, shift: torch.Tensor) -> torch.Tensor:
    """(n, 1, R, R/2+1) exp(-2 pi i (ky dy + kx dx)) for shifts (n, 2): exact sub-pixel moves.

    Separable, so it costs two small (n, R) phase vectors and one outer product.
    """
    along_y = torch.polar(torch.ones(()), -2.0 * torch.pi * shift[:, :1] * grid.ky)  # (n, R)
    along_x = torch.polar(torch.ones(()), -2.0 * torch.pi * shift[:, 1:] * grid.kx)
    return (along_y[:, :, None] * along_x[:, None, :])[:, None]


def render(
    seed: int,
    resolution: int,
    latents: np.ndarray,
    uniforms: np.ndarray,
    pose_zipf: float = POSE_ZIPF,
) -> np.ndarray:
    """(n, R, R, 3) uint8 images from latents (n, LATENT_DIM) and nuisance draws (n, D)."""
    w, grid = world(seed), _grid(seed, resolution)
    n = len(latents)
    names = [name for name in _DRAWS if name != "eps"]
    sizes = np.cumsum([_DRAWS[name] for name in names])[:-1]
    parts = np.split(uniforms, sizes, axis=1)
    draws = {k: torch.from_numpy(v).float() for k, v in zip(names, parts, strict=True)}

    z = torch.from_numpy(latents).float()  # (n, d)
    h = torch.tanh(torch.addmm(w.b1, z, w.w1.T))  # (n, HIDDEN)
    coeffs = torch.view_as_complex((h @ grid.object_real).view(n, 3, -1, 2))  # (n, 3, F_R)
    pose = torch.from_numpy(_poses(uniforms, pose_zipf))  # (n,)
    spectrum = torch.zeros(n, 3, resolution, resolution // 2 + 1, dtype=torch.complex64)
    spectrum[:, :, grid.object_rows, grid.object_cols] = coeffs * grid.pose_phases[pose]
    shift = MAX_SHIFT * (2.0 * draws["shift"] - 1.0)  # (n, 2)
    spectrum *= OBJECT_GAIN * _translation(grid, shift)

    # Two clutter textures per image, each at its own random shift and weight.
    ids = (draws["clutter_id"] * CLUTTER_BANK).long()  # (n, 2)
    weights = CLUTTER_GAIN * draws["clutter_weight"].sqrt()  # (n, 2)
    for layer in range(2):
        move = _translation(grid, draws["clutter_shift"][:, 2 * layer : 2 * layer + 2])
        spectrum += grid.clutter[ids[:, layer]] * (weights[:, layer, None, None, None] * move)

    field = torch.fft.irfft2(spectrum, s=(resolution, resolution), norm="forward")  # (n,3,R,R)
    gain = 1.0 + 0.3 * (draws["gain"] - 0.5)  # (n, 3) per-channel colour jitter
    contrast = 0.7 + 0.6 * draws["contrast"]  # (n, 1)
    brightness = 0.15 * (draws["brightness"] - 0.5)  # (n, 3)
    scale = w.pixel_scale * gain * contrast  # (n, 3)
    pixels = torch.addcmul(  # (n, 3, R, R) in [0, 1] units
        (0.5 + brightness)[:, :, None, None], scale[:, :, None, None], field
    )
    pixels = (pixels * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()  # (n, R, R, 3)


@dataclass(frozen=True)
class _Split:
    """What draws a split's examples: its hash stream, prototypes, spread and labels."""

    key: np.uint64
    prototypes: np.ndarray  # (C, LATENT_DIM)
    spread: float
    labels: np.ndarray  # (N,)
    pose_zipf: float


def _split(
    seed: int, class_set: str, split: str, num_classes: int, size: int, pose_zipf: float
) -> _Split:
    return _Split(
        key=_stream_key(seed, class_set, split),
        prototypes=prototypes(seed, class_set, num_classes),
        spread=CLASS_SPREAD[class_set],
        # Balanced classes, interleaved so that any prefix of the split is balanced too.
        labels=np.arange(size, dtype=np.int64) % num_classes,
        pose_zipf=pose_zipf,
    )


def _draws(split: _Split, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latents (n, LATENT_DIM) and nuisance uniforms (n, D) of the examples at ``indices``."""
    uniforms = per_image_uniforms(split.key, indices, _NUM_DRAWS)
    eps = ndtri(uniforms[:, :LATENT_DIM])
    latents = split.prototypes[split.labels[indices]] + split.spread * eps
    return latents, uniforms[:, LATENT_DIM:]


def _render_examples(seed: int, split: _Split, resolution: int, indices: np.ndarray) -> np.ndarray:
    out = np.empty((len(indices), resolution, resolution, 3), np.uint8)
    for start in range(0, len(indices), RENDER_BATCH):
        chunk = indices[start : start + RENDER_BATCH]
        latents, nuisance = _draws(split, chunk)
        out[start : start + len(chunk)] = render(
            seed, resolution, latents, nuisance, split.pose_zipf
        )
    return out


@functools.lru_cache(maxsize=8)
def pixel_stats(seed: int, resolution: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units, measured on 2,048 pretraining images.

    Every synthetic set at a resolution shares these, as ImageNet's statistics are shared by
    datasets of natural photographs.
    """
    split = _split(seed, "pretrain", "train", PRETRAIN_CLASSES, 2048, POSE_ZIPF)
    images = _render_examples(seed, split, resolution, np.arange(2048))
    pixels = images.reshape(-1, 3) / 255.0
    return tuple(pixels.mean(0).round(4).tolist()), tuple(pixels.std(0).round(4).tolist())


class SyntheticSource:
    """One split of a synthetic class set, rendered on demand at ``resolution``."""

    beton = None  # nothing on disk: the loaders render batches with take()

    def __init__(
        self,
        name: str,
        class_set: str,
        split: str,
        num_classes: int,
        size: int,
        resolution: int,
        seed: int = 0,
        *,
        pose_zipf: float = POSE_ZIPF,
        cache_whole: bool = False,
    ) -> None:
        if resolution not in RESOLUTIONS:
            raise DataError(
                f"synthetic data renders at {', '.join(map(str, RESOLUTIONS))} pixels, not "
                f"{resolution}; pick one of those resolutions"
            )
        self.name = name
        self.num_classes = num_classes
        self.resolution = resolution
        self.seed = seed
        self._split = _split(seed, class_set, split, num_classes, size, pose_zipf)
        self.labels = self._split.labels
        self.mean, self.std = pixel_stats(seed, resolution)
        # Small splits read again and again (probe targets at every checkpoint, the held-out
        # set) are rendered once into a file under the cache folder and memory-mapped after.
        tail = "" if pose_zipf == POSE_ZIPF else f"-zipf{pose_zipf:g}"
        self._cache = (
            cache_dir()
            / "synthetic"
            / f"{name}-{split}-seed{seed}-r{resolution}{tail}-{_VERSION}.npy"
            if cache_whole
            else None
        )
        self._cached: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """(n, R, R, 3) uint8: the images at ``indices``, rendered now."""
        indices = checked_indices(indices, len(self), self.name)
        if self._cache is not None:
            return np.asarray(self._whole()[indices])
        return _render_examples(self.seed, self._split, self.resolution, indices)

    def _whole(self) -> np.ndarray:
        """(N, R, R, 3) uint8 memory-mapped: every image of the split, rendered on first use."""
        if self._cached is None:
            assert self._cache is not None
            if not self._cache.exists():
                images = _render_examples(
                    self.seed, self._split, self.resolution, np.arange(len(self))
                )
                self._cache.parent.mkdir(parents=True, exist_ok=True)
                partial = self._cache.with_suffix(f".{os.getpid()}.partial.npy")
                np.save(partial, images)
                os.replace(partial, self._cache)  # atomic: never half a cache file
            self._cached = np.load(self._cache, mmap_mode="r")
        return self._cached

    def latents(self, indices: np.ndarray) -> np.ndarray:
        """(n, LATENT_DIM) the latent factors behind ``indices``: an oracle for experiments."""
        indices = np.asarray(indices, dtype=np.int64)
        return _draws(self._split, indices)[0]

    def poses(self, indices: np.ndarray) -> np.ndarray:
        """(n,) the pose behind each of ``indices`` (0 = most frequent): an oracle too."""
        indices = np.asarray(indices, dtype=np.int64)
        return _poses(_draws(self._split, indices)[1], self._split.pose_zipf)


def pretraining_split(
    split: str, resolution: int, seed: int = 0, pose_zipf: float = POSE_ZIPF
) -> SyntheticSource:
    """The synthetic pretraining set, 1,000 classes: "train" 1.2M images, "heldout" 10k."""
    size = PRETRAIN_CLASSES * PRETRAIN_PER_CLASS[split]
    return SyntheticSource(
        "synthetic",
        "pretrain",
        split,
        PRETRAIN_CLASSES,
        size,
        resolution,
        seed,
        pose_zipf=pose_zipf,
        cache_whole=split == "heldout",
    )


def downstream_split(
    target: str, split: str, resolution: int, seed: int = 0, pose_zipf: float = POSE_ZIPF
) -> SyntheticSource:
    """A CIFAR-shaped target ("train" 50k, "test" 10k) over the pretraining set's latent space."""
    num_classes = DOWNSTREAM_CLASSES[target]
    return SyntheticSource(
        target,
        target,
        split,
        num_classes,
        DOWNSTREAM_SIZES[split],
        resolution,
        seed,
        pose_zipf=pose_zipf,
        cache_whole=True,
    )
