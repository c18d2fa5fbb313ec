"""The augmentation generator across device types: a CPU checkpoint resumes on CUDA and back."""

from __future__ import annotations

from pathlib import Path

import torch
from test_worker import checkpoints, enqueue, jobs, run_worker_here, tiny_grid

from scalelab.train import checkpoint
from scalelab.train.rng import generator_state, position_seed, restore_generator

CUDA_STATE = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: Philox seed, offset


def test_a_state_of_the_same_device_type_continues_the_stream():
    saved_gen = torch.Generator().manual_seed(5)
    torch.rand(7, generator=saved_gen)
    saved = generator_state(saved_gen)
    assert saved["generator_device"] == "cpu" and saved["generator"].numel() == 5056
    resumed = torch.Generator()
    assert restore_generator(resumed, saved, seed=0, position=(3, 1)) is None
    assert torch.equal(torch.rand(4, generator=resumed), torch.rand(4, generator=saved_gen))


def test_a_cuda_state_on_a_cpu_generator_reseeds_from_seed_and_position():
    saved = {"generator": CUDA_STATE, "generator_device": "cuda"}
    first, second = torch.Generator(), torch.Generator()
    note = restore_generator(first, saved, seed=4, position=(2, 7))
    assert note == (
        "checkpoint's generator state is for cuda, this run is on cpu: augmentation reseeded "
        "from (seed 4, epoch 2, batch 7)"
    )
    restore_generator(second, saved, seed=4, position=(2, 7))
    assert torch.equal(first.get_state(), second.get_state())  # every resumer draws the same
    other = torch.Generator()
    restore_generator(other, saved, seed=4, position=(2, 8))
    assert not torch.equal(first.get_state(), other.get_state())


def test_checkpoints_without_the_device_type_are_read_by_the_states_size():
    legacy_cuda = {"generator": CUDA_STATE}
    assert restore_generator(torch.Generator(), legacy_cuda, 0, (1, 0)).startswith(
        "checkpoint's generator state is for cuda, this run is on cpu"
    )
    legacy_cpu = {"generator": torch.Generator().manual_seed(3).get_state()}
    resumed = torch.Generator()
    assert restore_generator(resumed, legacy_cpu, 0, (1, 0)) is None
    assert torch.equal(resumed.get_state(), legacy_cpu["generator"])


def test_position_seeds_differ_by_seed_and_position_and_fit_manual_seed():
    seeds = {position_seed(s, (e, b)) for s in range(3) for e in range(3) for b in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**63 for s in seeds)


def test_a_job_checkpointed_on_cuda_resumes_on_the_cpu(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    enqueue(tiny_grid(tmp_path, epochs="[1]"), db)
    assert run_worker_here(db, tmp_path).exit_code == 0
    (t1,) = (tmp_path / "work").rglob("T1.pt")
    saved = checkpoint.load(t1)
    assert saved["generator_device"] == "cpu"
    # As if the job had run on a GPU: a 16-byte state that a CPU generator cannot take.
    checkpoint.save_atomic({**saved, "generator": CUDA_STATE, "generator_device": "cuda"}, t1)
    enqueue(tiny_grid(tmp_path, epochs="[1, 2]"), db)  # a new T: resume from T1.pt
    result = run_worker_here(db, tmp_path)
    assert result.exit_code == 0, result.output
    assert "augmentation reseeded from (seed 0, epoch 1, batch 0)" in result.stderr
    (job,) = jobs(db)
    assert job.status == "done" and job.last_error is None
    assert [c.epochs for c in checkpoints(db)] == [1, 2]
