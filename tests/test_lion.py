"""LION against its published update rule (Chen et al. 2023, Algorithm 2)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.train.lion import Lion


def test_two_steps_computed_by_hand():
    # lr 0.1, weight decay 0.5, betas (0.9, 0.99). The third coordinate's second gradient is
    # negative but the momentum of the first keeps c positive: the update follows c, not g.
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 2.0], dtype=torch.float64))
    opt = Lion([theta], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)

    theta.grad = torch.tensor([0.3, -0.1, 10.0, 0.0], dtype=torch.float64)
    opt.step()
    # c = 0.1 g -> sign (1, -1, 1, 0); θ - 0.1 (sign + 0.5 θ); m = 0.01 g
    torch.testing.assert_close(
        theta.data, torch.tensor([0.85, -1.8, 0.375, 1.9], dtype=torch.float64)
    )
    torch.testing.assert_close(
        opt.state[theta]["exp_avg"], torch.tensor([0.003, -0.001, 0.1, 0.0], dtype=torch.float64)
    )

    theta.grad = torch.tensor([-0.2, -0.1, -0.5, 0.0], dtype=torch.float64)
    opt.step()
    # c = 0.9 m + 0.1 g = (-0.0173, -0.0109, 0.04, 0) -> sign (-1, -1, 1, 0)
    torch.testing.assert_close(
        theta.data, torch.tensor([0.9075, -1.61, 0.25625, 1.805], dtype=torch.float64)
    )
    torch.testing.assert_close(
        opt.state[theta]["exp_avg"],
        torch.tensor([0.00097, -0.00199, 0.094, 0.0], dtype=torch.float64),
    )


def reference_lion(theta, grads, lr, beta1, beta2, weight_decay):
    """The published rule, written one step at a time with no tricks."""
    theta, m = theta.clone(), torch.zeros_like(theta)
    for g in grads:
        c = beta1 * m + (1 - beta1) * g
        theta = theta - lr * (torch.sign(c) + weight_decay * theta)
        m = beta2 * m + (1 - beta2) * g
    return theta, m


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.999),
    weight_decay=st.floats(0.0, 0.1),
)
def test_matches_the_published_rule_over_several_steps(seed, lr, beta1, beta2, weight_decay):
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 5, generator=gen, dtype=torch.float64) for _ in range(4)]
    theta = torch.nn.Parameter(start.clone())
    opt = Lion([theta], lr=lr, betas=(beta1, beta2), weight_decay=weight_decay)
    for g in grads:
        theta.grad = g.clone()
        opt.step()
    expected_theta, expected_m = reference_lion(start, grads, lr, beta1, beta2, weight_decay)
    torch.testing.assert_close(theta.data, expected_theta, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(opt.state[theta]["exp_avg"], expected_m, rtol=1e-9, atol=1e-12)


def test_groups_have_their_own_settings_and_params_without_grad_stay():
    a = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(3))
    frozen = torch.nn.Parameter(torch.ones(3))
    opt = Lion([{"params": [a]}, {"params": [b, frozen], "lr": 0.5}], lr=0.1)
    a.grad = torch.ones(3)
    b.grad = -torch.ones(3)
    opt.step()
    torch.testing.assert_close(a.data, torch.full((3,), -0.1))
    torch.testing.assert_close(b.data, torch.full((3,), 0.5))
    torch.testing.assert_close(frozen.data, torch.ones(3))
    assert frozen not in opt.state


def test_state_dict_round_trip_continues_identically():
    # A resumed worker reloads the optimizer: the momentum must survive the round trip.
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = Lion(model.parameters(), lr=0.01, weight_decay=0.1)
    x = torch.randn(8, 4)
    model(x).square().mean().backward()
    opt.step()

    twin = copy.deepcopy(model)
    twin_opt = Lion(twin.parameters(), lr=0.01, weight_decay=0.1)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "LION needs a positive learning rate, got 0.0"),
        ({"lr": 1e-5, "betas": (1.0, 0.99)}, "LION needs betas in [0, 1), got (1.0, 0.99)"),
        ({"lr": 1e-5, "weight_decay": -1.0}, "LION needs a non-negative weight decay, got -1.0"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError) as exc:
        Lion([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    assert str(exc.value) == message
