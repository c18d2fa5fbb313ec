"""The model zoo: the paper's parameter counts, shapes, pre-logits, and name parsing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.errors import ModelNameError
from scalelab.models import PAPER_ZOO, ModelSpec, build_model, parse_model_name

IMAGENET21K = 11230


def count_params(name: str, num_classes: int, resolution: int) -> int:
    with torch.device("meta"):  # 125M parameters cost nothing on the meta device
        model = build_model(name, num_classes, resolution)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "num_classes", "paper_millions"),
    [
        ("B-6/Wi-512", IMAGENET21K, 24.66),
        ("B-12/Wi-512", IMAGENET21K, 37.26),
        ("B-6/Wi-1024", IMAGENET21K, 74.47),
        ("B-12/Wi-1024", IMAGENET21K, 124.84),
        ("B-12/Wi-768", 1000, 66.89),
    ],
)
def test_parameter_counts_match_the_paper(name: str, num_classes: int, paper_millions: float):
    assert round(count_params(name, num_classes, 64) / 1e6, 2) == paper_millions


def test_paper_zoo_sizes_in_order_of_magnitude():
    # DESIGN.md: B-6/Wi-256 ~ 9M and B-12/Wi-256 ~ 12M with the 21k head.
    assert round(count_params("B-6/Wi-256", IMAGENET21K, 64) / 1e6) == 9
    assert round(count_params("B-12/Wi-256", IMAGENET21K, 64) / 1e6) == 12
    assert len(set(PAPER_ZOO)) == len(PAPER_ZOO)
    assert all(parse_model_name(name).name == name for name in PAPER_ZOO)


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(1, 4),
    width=st.integers(1, 48),
    expansion=st.integers(1, 6),
    classes=st.integers(1, 30),
    resolution=st.integers(1, 12),
)
def test_bottleneck_parameters_follow_the_architecture(
    depth, width, expansion, classes, resolution
):
    embed = 3 * resolution**2 * width + width
    block = (
        2 * width
        + (width * expansion * width + expansion * width)
        + (expansion * width * width + width)
    )  # LayerNorm + W_e + W_c
    head = width * classes + classes
    name = f"B-{depth}/Wi-{width}/E-{expansion}"
    assert count_params(name, classes, resolution) == embed + depth * block + head


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 4), width=st.integers(1, 48), classes=st.integers(1, 30))
def test_standard_mlp_parameters_follow_the_architecture(depth, width, classes):
    resolution = 8
    expected = (
        (3 * resolution**2 * width + width)
        + (depth - 1) * (2 * width + width * width + width)
        + (width * classes + classes)
    )
    assert count_params(f"S-{depth}/Wi-{width}", classes, resolution) == expected


@pytest.mark.parametrize("name", ["B-2/Wi-16", "B-2/Wi-16/E-2", "S-3/Wi-16", "ResMLP-2/16/4"])
def test_forward_returns_logits_and_prelogits(name: str):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, resolution=16)
    x = torch.randn(5, 3, 16, 16)
    logits, features = model(x)
    assert logits.shape == (5, 7)
    assert features.shape == (5, model.feature_dim)
    assert model.feature_dim == 16
    # The pre-logits are exactly what the linear head sees.
    torch.testing.assert_close(model.head(features), logits)
    # Examples do not interact (no batch statistics): one image alone gives the same output.
    torch.testing.assert_close(model(x[:1])[0], logits[:1], rtol=1e-5, atol=1e-6)


def test_models_train_end_to_end_gradients_reach_every_parameter():
    for name in ["B-2/Wi-8", "S-2/Wi-8", "ResMLP-2/8/4"]:
        model = build_model(name, num_classes=3, resolution=8)
        logits, _ = model(torch.randn(4, 3, 8, 8))
        logits.sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert missing == [], f"{name}: no gradient for {missing}"


def test_resmlp_uses_layerscale_and_affine_norms():
    model = build_model("ResMLP-2/8/4", num_classes=3, resolution=8)
    names = {name for name, _ in model.named_parameters()}
    assert "blocks.0.scale_patches" in names and "blocks.0.norm_patches.alpha" in names
    assert torch.all(model.blocks[0].scale_patches == 0.1)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    # Patch mixing maps the N = (8/4)^2 = 4 patches to 4 patches.
    assert model.blocks[0].mix_patches.weight.shape == (4, 4)


def test_wrong_input_shape_is_a_clear_error():
    model = build_model("B-1/Wi-8", num_classes=3, resolution=8)
    with pytest.raises(ValueError) as exc:
        model(torch.randn(2, 3, 16, 16))
    assert str(exc.value) == (
        "expected images of shape (B, 3, 8, 8), got (2, 3, 16, 16); "
        "resize them with scalelab.data.to_model_input"
    )


@pytest.mark.parametrize(
    ("name", "spec", "canonical"),
    [
        ("B-12/Wi-1024", ModelSpec("bottleneck", 12, 1024), "B-12/Wi-1024"),
        ("B-12/Wi-1024/E-4", ModelSpec("bottleneck", 12, 1024), "B-12/Wi-1024"),
        ("B-6/Wi-512/E-8", ModelSpec("bottleneck", 6, 512, expansion=8), "B-6/Wi-512/E-8"),
        ("B-06/Wi-0512", ModelSpec("bottleneck", 6, 512), "B-6/Wi-512"),
        ("S-6/Wi-1024", ModelSpec("standard", 6, 1024), "S-6/Wi-1024"),
        ("ResMLP-12/384/8", ModelSpec("resmlp", 12, 384, patch=8), "ResMLP-12/384/8"),
        (" B-1/Wi-2 ", ModelSpec("bottleneck", 1, 2), "B-1/Wi-2"),
    ],
)
def test_names_parse_to_specs_with_canonical_spelling(name: str, spec: ModelSpec, canonical: str):
    assert parse_model_name(name) == spec
    assert spec.name == canonical


GRAMMAR = (
    "expected B-<depth>/Wi-<width>[/E-<expansion>], S-<depth>/Wi-<width> or "
    "ResMLP-<depth>/<dim>/<patch> with positive integers, e.g. 'B-12/Wi-1024'"
)


@pytest.mark.parametrize(
    "name",
    [
        "B-12/Wi-",
        "X-3",
        "",
        "B-12",
        "B-12/Wi-1024/E-",
        "b-12/wi-1024",
        "B--3/Wi-8",
        "S-6/Wi-1024/E-4",
        "ResMLP-12/384",
        "B-1.5/Wi-8",
        "B-12/Wi-1024 extra",
    ],
)
def test_malformed_names_say_what_is_expected(name: str):
    with pytest.raises(ModelNameError) as exc:
        parse_model_name(name)
    assert str(exc.value) == f"model name {name!r} does not parse; {GRAMMAR}"


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("B-0/Wi-512", "depth"),
        ("B-6/Wi-0", "width"),
        ("B-6/Wi-8/E-0", "expansion"),
        ("ResMLP-12/384/0", "patch"),
        ("S-0/Wi-8", "depth"),
    ],
)
def test_zero_sizes_are_rejected(name: str, field: str):
    with pytest.raises(ModelNameError) as exc:
        parse_model_name(name)
    assert str(exc.value) == (
        f"model name {name!r}: {field} must be a positive integer, got 0; {GRAMMAR}"
    )


def test_authors_spelling_gets_a_suggestion():
    with pytest.raises(ModelNameError) as exc:
        parse_model_name("B_12-Wi_1024")
    assert (
        str(exc.value) == "model name 'B_12-Wi_1024' does not parse; did you mean 'B-12/Wi-1024'?"
    )


def test_resolution_must_be_divisible_by_the_patch():
    with pytest.raises(ModelNameError) as exc:
        build_model("ResMLP-12/384/16", num_classes=10, resolution=60)
    assert str(exc.value) == (
        "resolution 60 is not divisible by the patch size 16 of 'ResMLP-12/384/16'; "
        "use a resolution that is a multiple of 16 or another patch size"
    )


def test_classes_and_resolution_must_be_positive():
    with pytest.raises(ModelNameError) as exc:
        build_model("B-1/Wi-8", num_classes=0, resolution=8)
    assert str(exc.value) == (
        "model 'B-1/Wi-8' needs at least 1 class, got 0; pass the number of classes of the dataset"
    )
    with pytest.raises(ModelNameError) as exc:
        build_model("B-1/Wi-8", num_classes=3, resolution=0)
    assert str(exc.value) == "model 'B-1/Wi-8' needs a positive input resolution, got 0"


specs = st.one_of(
    st.builds(
        ModelSpec,
        st.just("bottleneck"),
        st.integers(1, 99),
        st.integers(1, 9999),
        st.integers(1, 16),
    ),
    st.builds(ModelSpec, st.just("standard"), st.integers(1, 99), st.integers(1, 9999)),
    st.builds(
        lambda d, w, p: ModelSpec("resmlp", d, w, patch=p),
        st.integers(1, 99),
        st.integers(1, 9999),
        st.integers(1, 32),
    ),
)


@given(specs)
def test_canonical_names_round_trip(spec: ModelSpec):
    assert parse_model_name(spec.name) == spec
