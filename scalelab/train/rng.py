"""The augmentation generator's state in a checkpoint, across CPU and CUDA.

A generator's state is device-specific: a CPU generator's is the 5,056-byte Mersenne Twister
state, a CUDA generator's 16 bytes (Philox seed and offset), and ``set_state`` refuses the
other kind. A job checkpointed on one device type and resumed on the other therefore cannot
continue the saved stream; it continues with a stream seeded from (seed, position) instead,
which is the same for every worker that resumes from that checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# State sizes in bytes, to read the device type of checkpoints saved before it was stored.
STATE_BYTES = {"cpu": 5056, "cuda": 16}


def generator_state(generator: torch.Generator) -> dict[str, Any]:
    """The checkpoint entries for ``generator``: its state and its device type."""
    return {"generator": generator.get_state(), "generator_device": generator.device.type}


def saved_device_type(saved: dict[str, Any]) -> str:
    """The device type a checkpoint's generator state belongs to."""
    if "generator_device" in saved:
        return str(saved["generator_device"])
    size = int(saved["generator"].numel())
    return next((kind for kind, n in STATE_BYTES.items() if n == size), f"unknown ({size} bytes)")


def position_seed(seed: int, position: tuple[int, int]) -> int:
    """A 63-bit seed drawn from (seed, epochs, batches): distinct positions, distinct streams."""
    words = np.random.SeedSequence([seed, *position]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def restore_generator(
    generator: torch.Generator, saved: dict[str, Any], seed: int, position: tuple[int, int]
) -> str | None:
    """Load a checkpoint's generator state into ``generator``; on another device type, reseed.

    Returns the one line to log when it reseeded, else None.
    """
    saved_type = saved_device_type(saved)
    if saved_type == generator.device.type:
        generator.set_state(saved["generator"])
        return None
    generator.manual_seed(position_seed(seed, position))
    epochs, batches = position
    return (
        f"checkpoint's generator state is for {saved_type}, this run is on "
        f"{generator.device.type}: augmentation reseeded from (seed {seed}, epoch {epochs}, "
        f"batch {batches})"
    )
