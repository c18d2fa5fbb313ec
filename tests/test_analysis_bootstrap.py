"""Bootstrap over runs: whole runs are resampled, seeded, and warm starts change no answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.analysis.bootstrap import BootstrapDraws, resample_runs
from scalelab.analysis.estimates import ESTIMATES
from scalelab.analysis.points import PointArrays, select_points
from scalelab.analysis.report import analyse, fit_scaling
from scalelab.analysis.synthetic import synthetic_runs


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=50), st.integers(0, 2**32 - 1))
def test_resamples_are_made_of_whole_runs(run_of_row: list[int], seed: int) -> None:
    run = np.array(run_of_row)
    sizes = {r: int((run == r).sum()) for r in set(run_of_row)}
    for index in resample_runs(run, 5, seed):
        picked = run[index]
        assert len(set(index.tolist())) == len(set(index.tolist()) & set(range(len(run))))
        # Each run appears a whole number of times, all of its rows each time...
        copies = {r: int((picked == r).sum()) // sizes[r] for r in set(picked.tolist())}
        for r, k in copies.items():
            assert (picked == r).sum() == k * sizes[r]
            assert np.bincount(index[picked == r], minlength=len(run))[run == r].tolist() == (
                [k] * sizes[r]
            )
        # ...and as many runs are drawn as there are.
        assert sum(copies.values()) == len(sizes)


def test_resamples_are_seeded() -> None:
    run = np.repeat(np.arange(20), 3)
    first = [i.tolist() for i in resample_runs(run, 10, seed=7)]
    assert first == [i.tolist() for i in resample_runs(run, 10, seed=7)]
    assert first != [i.tolist() for i in resample_runs(run, 10, seed=8)]


def test_percentile_interval_and_too_few_successes() -> None:
    draws = BootstrapDraws(resamples=100, seed=0, samples={"x": [(float(v),) for v in range(100)]})
    assert draws.interval("x", 0) == pytest.approx([2.475, 96.525])
    draws.samples["x"] = draws.samples["x"][:49]  # under half of the resamples could be fitted
    assert draws.interval("x", 0) is None


EXPONENTS = {"alpha", "beta", "params_exponent", "examples_exponent"}


@pytest.mark.parametrize(
    ("parts", "resamples"),
    [(("compute_law", "params_law", "examples_law", "allocation"), 4), (("parametric",), 1)],
)
def test_warm_starts_and_analytic_gradients_change_no_answer(
    parts: tuple[str, ...], resamples: int
) -> None:
    """What the speed-ups buy must be speed only: cold, finite-difference fits of the same
    resamples give the same exponents."""
    data = PointArrays.from_points(select_points(synthetic_runs(noise=0.02), "synthetic"))
    fast = analyse(data, 50.0, parts=parts, resamples=resamples, seed=3)
    slow = analyse(
        data,
        50.0,
        parts=parts,
        resamples=resamples,
        seed=3,
        warm_start=False,
        analytic_gradients=False,
    )
    for name in parts:
        a, b = np.array(fast.draws.samples[name]), np.array(slow.draws.samples[name])
        assert a.shape == b.shape and len(a), name
        # Exponents agree to the optimisers' precision.
        exponent = [i for i, f in enumerate(ESTIMATES[name].sample_fields) if f in EXPONENTS]
        assert np.allclose(a[:, exponent], b[:, exponent], rtol=2e-3, atol=2e-3), name


@settings(max_examples=4, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_same_results_stored_in_another_order_give_the_same_intervals(order) -> None:
    """Workers finish jobs in any order, so two databases with the same results number their
    jobs and checkpoints differently: a bootstrap seed must draw the same resamples from both."""
    # A grid whose P* lies between its sizes, so that Approach 1 has minima to locate.
    runs = synthetic_runs(
        params=tuple(np.geomspace(1e5, 1e7, 4)),
        examples=tuple(np.geomspace(3e4, 1e7, 4)),
        epochs=(50, 100),
        seeds=(0, 1),
        noise=0.05,
        target="c",
    )
    jobs = sorted(set(runs["job_id"]))
    renumbered = dict(zip(jobs, order.sample(jobs, len(jobs)), strict=True))
    other = runs.assign(job_id=runs["job_id"].map(renumbered))
    other = other.sample(frac=1.0, random_state=order.randrange(2**32))
    other = other.assign(checkpoint_id=np.arange(1, len(other) + 1))
    first, second = (fit_scaling(frame, "c", bootstrap=100) for frame in (runs, other))
    for part, field in (
        ("compute_law", "alpha_ci"),
        ("params_law", "alpha_ci"),
        ("examples_law", "alpha_ci"),
        ("allocation", "params_exponent_ci"),
        ("parametric", "params_exponent_ci"),
    ):
        assert first[part][field] == second[part][field], part
