"""The synthetic world's tail knob, end to end (minutes on a 2-core CPU): the measured E(N)
exponent moves the way the knob says.

Pose k of the embedded world is drawn with p_k ~ k^-s (dataset = "synthetic:pose_zipf=s").
A lighter tail (larger s) leaves less probability mass on the poses an encoder has not yet
learned, so error falls faster with N: Hutter's (2021) learning curves give
alpha_N = (s - 1)/s, rising with s. Each s is its own sweep in one database: one model trained
on N = 32k ... 512k with two seeds, probed on synthetic-cifar100, and E(N) = a N^-alpha + E_inf
fitted by scalelab's own estimator with its bootstrap over seeds. Only the ordering is
asserted; the measured values sit below Hutter's (the probe's error is not the memorising
learner's, and E_inf is fitted).
"""

from __future__ import annotations

import pytest
from cli_process import run_scalelab

from scalelab import load_runs
from scalelab.analysis.estimates import ESTIMATES
from scalelab.analysis.points import PointArrays, select_points
from scalelab.analysis.report import analyse

TAILS = (1.25, 1.5, 2.0)  # heavier to lighter
TARGET = "synthetic-cifar100"
GRID = """
name = "tail-{s:g}"
dataset = "synthetic:pose_zipf={s:g}"
resolution = 16
models = ["B-1/Wi-64"]
examples = [32000, 64000, 128000, 256000, 512000]
epochs = [1]
seeds = [0, 1]

[train]
batch_size = 128
lr = 1e-3
crop_scale = [1.0, 1.0]
mixup = 0.0
heldout_examples = 2000

[probe]
targets = ["{target}"]
method = "ridge"
settings = {{ train_examples = 20000, test_examples = 10000 }}
"""


@pytest.fixture(scope="module")
def alpha_n(tmp_path_factory: pytest.TempPathFactory) -> dict[float, tuple[float, list[float]]]:
    """Per tail exponent s: alpha_N of E(N) and its 95% bootstrap interval."""
    work = tmp_path_factory.mktemp("tail")
    db = str(work / "runs.db")
    for s in TAILS:
        grid = work / f"tail-{s:g}.toml"
        grid.write_text(GRID.format(s=s, target=TARGET))
        run_scalelab("enqueue", str(grid), "--db", db, cwd=work)
    run_scalelab(
        "launch", "--executor", "local", "--workers", "2", "--until-empty", "--db", db, cwd=work
    )
    alpha_field = ESTIMATES["examples_law"].sample_fields.index("alpha")
    measured = {}
    for s in TAILS:
        points = select_points(load_runs(db, sweeps=[f"tail-{s:g}"]), TARGET)
        analysis = analyse(
            PointArrays.from_points(points), 1.0, parts=["examples_law"], resamples=300
        )
        interval = analysis.draws.interval("examples_law", alpha_field)
        measured[s] = (analysis.fits["examples_law"].alpha, interval)
    return measured


@pytest.mark.slow
def test_a_lighter_pose_tail_gives_a_steeper_learning_curve(alpha_n) -> None:
    (a_heavy, ci_heavy), (a_mid, ci_mid), (a_light, ci_light) = (alpha_n[s] for s in TAILS)
    assert 0 < a_heavy < a_mid < a_light, alpha_n
    # Apart by more than their intervals: the knob, not seed noise, moves the exponent.
    assert ci_heavy[1] < ci_mid[0] and ci_mid[1] < ci_light[0], alpha_n
