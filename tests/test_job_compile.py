"""torch.compile over many jobs in one worker: never past dynamo's recompile limit.

Without a fresh compile cache per job, every new model (another width) and every new batch
shape (the partial last batch) adds an entry to the same code object's cache; past
``recompile_limit`` dynamo quietly runs eager. Here the limit is 2 and hitting it is an error,
so three jobs of three widths with partial batches all finish only if each job starts afresh.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_worker import enqueue, jobs, run_worker_here

GRID = """
name = "compiled"
dataset = "synthetic"
resolution = 16
models = ["B-1/Wi-16", "B-1/Wi-24", "B-1/Wi-32"]
examples = [40]            # batches of 16, 16 and 8: two batch shapes per job
epochs = [1]

[train]
batch_size = 16
heldout_examples = 20
compile = true

[probe]
targets = []
"""


@pytest.mark.slow
def test_three_compiled_jobs_in_one_worker_stay_within_the_recompile_limit(tmp_path: Path) -> None:
    torch._dynamo.utils.counters.clear()
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    db = str(tmp_path / "runs.db")
    enqueue(grid, db)
    with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True):
        result = run_worker_here(db, tmp_path)
    assert result.exit_code == 0, result.output
    assert [(job.status, job.attempts, job.last_error) for job in jobs(db)] == [
        ("done", 1, None)
    ] * 3
    # Each job compiled its model at most twice (full batch, then a dynamic batch size).
    assert 3 <= torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 6


def test_uneven_micro_batches_share_one_compiled_graph() -> None:
    """Batch 16 in 3 micro-batches is 6, 5, 5 images, and another batch size is another shape:
    the batch dimension is marked dynamic, so one graph serves every micro-batch and a second
    compile of the same model would hit the limit (an error here, not a silent eager run)."""
    from scalelab.models import build_model
    from scalelab.train.step import TrainStep, make_optimizer

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch.manual_seed(0)
    model = build_model("B-1/Wi-16", num_classes=5, resolution=8)
    step = TrainStep(
        model,
        make_optimizer(model, "lion", 1e-4, 1e-3),
        device="cpu",
        accumulation_steps=3,
        compile=True,
    )
    with torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True):
        for batch in (16, 16, 12):  # micro-batches of 6/5/5, then 4/4/4
            x = torch.randn(batch, 3, 8, 8)
            y = torch.softmax(torch.randn(batch, 5), dim=1)
            assert torch.isfinite(step(x, y))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
