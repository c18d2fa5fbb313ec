"""FLOP(f) in the paper's convention (1 multiply-accumulate = 1 FLOP) and Eq. 4."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ModelNameError
from scalelab.flops import ModelCost, compute, describe_model, model_cost
from scalelab.models import build_model


def test_b12_wi768_matches_table_4():
    cost = model_cost("B-12/Wi-768", 1000, 64)
    # Paper Table 4: 66.89M parameters, 66.8M FLOPs per forward pass.
    assert cost == ModelCost(params=66_894_568, flops=66_828_288, convention="mac")
    assert round(cost.flops / 1e6, 1) == 66.8


@settings(max_examples=20, deadline=None)
@given(
    depth=st.integers(1, 4),
    width=st.integers(1, 64),
    expansion=st.integers(1, 6),
    classes=st.integers(1, 50),
    resolution=st.integers(1, 16),
)
def test_bottleneck_flops_are_the_multiply_accumulates_of_its_matmuls(
    depth, width, expansion, classes, resolution
):
    model_cost.cache_clear()
    cost = model_cost(f"B-{depth}/Wi-{width}/E-{expansion}", classes, resolution)
    macs = 3 * resolution**2 * width + depth * 2 * expansion * width**2 + width * classes
    assert cost.flops == macs
    # For an MLP FLOP(f) is P minus biases and LayerNorm parameters: close to, below, P.
    assert cost.flops < cost.params


@pytest.mark.parametrize(
    ("depth", "dim", "patch", "resolution"), [(2, 16, 4, 16), (12, 384, 8, 64)]
)
def test_resmlp_flops_reuse_weights_across_patches(depth, dim, patch, resolution):
    classes = 10
    cost = model_cost(f"ResMLP-{depth}/{dim}/{patch}", classes, resolution)
    n = (resolution // patch) ** 2  # patches
    macs = (
        n * 3 * patch**2 * dim  # patch embedding, the same weights at every patch
        + depth * (dim * n * n + n * 2 * 4 * dim * dim)  # patch mixing + channel MLP
        + dim * classes
    )
    assert cost.flops == macs
    assert cost.flops > 5 * cost.params


def test_meta_count_equals_a_real_forward_pass_halved():
    torch.manual_seed(0)
    model = build_model("B-2/Wi-32", 10, 8)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 8, 8))
    cost = model_cost("B-2/Wi-32", 10, 8)
    assert cost.flops * 2 == counter.get_total_flops()
    assert cost.params == sum(p.numel() for p in model.parameters())


def test_counting_is_cached():
    model_cost.cache_clear()
    model_cost("B-6/Wi-512", 11230, 64)
    model_cost("B-6/Wi-512", 11230, 64)
    assert model_cost.cache_info().hits == 1


def test_bad_names_raise_model_name_errors():
    with pytest.raises(ModelNameError):
        model_cost("X-3", 10, 64)


def test_compute_is_equation_4():
    assert compute(66_828_288, examples=1_000_000, epochs=100) == 66_828_288 * 3 * 1e6 * 100
    assert compute(10, examples=5, epochs=0) == 0.0


def test_describe_model_adds_compute_given_n_and_t():
    info = describe_model("B-12/Wi-768/E-4", 1000, 64, examples=1000, epochs=2)
    assert info == {
        "model": "B-12/Wi-768",
        "classes": 1000,
        "resolution": 64,
        "params": 66_894_568,
        "flops": 66_828_288,
        "flop_convention": "mac",
        "examples": 1000,
        "epochs": 2,
        "compute": 66_828_288 * 3 * 1000 * 2.0,
        "pflops": 66_828_288 * 3 * 1000 * 2 / 1e15,
    }
    assert "compute" not in describe_model("B-12/Wi-768", 1000, 64)


runner = CliRunner()


def test_model_info_command_text_and_json():
    result = runner.invoke(
        app,
        [
            "model-info",
            "B-12/Wi-768",
            "--classes",
            "1000",
            "--examples",
            "1000000",
            "--epochs",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "model       B-12/Wi-768  (1000 classes, 64x64x3 input)",
        "parameters  66,894,568 (66.89M)",
        "FLOP(f)     66,828,288 (66.83M) per example, 1 multiply-accumulate = 1 FLOP",
        "compute C   2.005e+16 FLOPs = 20.05 PFLOPs (FLOP(f)·3·N·T with N=1,000,000, T=100)",
    ]
    result = runner.invoke(
        app, ["model-info", "ResMLP-2/16/4", "--classes", "10", "--resolution", "16", "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["flops"] > info["params"] and info["flop_convention"] == "mac"


def test_model_info_errors_are_one_line():
    result = runner.invoke(app, ["model-info", "B-12/Wi-"])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("error: model name 'B-12/Wi-' does not parse; expected B-<depth>/Wi-<width>")
    )
    result = runner.invoke(app, ["model-info", "B-1/Wi-8", "--examples", "10"])
    assert result.exit_code == 2
    assert "error: give both --examples and --epochs to compute C, or neither" in result.output
