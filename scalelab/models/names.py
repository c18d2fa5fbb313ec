"""Model names: the paper's `B-L/Wi-m[/E-k]`, `S-L/Wi-m` and ResMLP's `ResMLP-L/d/p`.

A name is the whole architecture; the number of classes and the input resolution come from
the data. `parse_model_name` turns a name into a `ModelSpec` whose `.name` is the canonical
spelling (default expansion dropped, leading zeros removed), so results group by model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scalelab.errors import ModelNameError

Family = Literal["bottleneck", "standard", "resmlp"]

DEFAULT_EXPANSION = 4  # the paper's inverted-bottleneck factor k: W_e is m -> 4m

GRAMMAR = (
    "expected B-<depth>/Wi-<width>[/E-<expansion>], S-<depth>/Wi-<width> or "
    "ResMLP-<depth>/<dim>/<patch> with positive integers, e.g. 'B-12/Wi-1024'"
)

_PATTERNS: dict[Family, re.Pattern[str]] = {
    "bottleneck": re.compile(r"B-(?P<depth>\d+)/Wi-(?P<width>\d+)(?:/E-(?P<expansion>\d+))?"),
    "standard": re.compile(r"S-(?P<depth>\d+)/Wi-(?P<width>\d+)"),
    "resmlp": re.compile(r"ResMLP-(?P<depth>\d+)/(?P<width>\d+)/(?P<patch>\d+)"),
}
# The authors' scripts spell B-12/Wi-1024 as B_12-Wi_1024; point such users to our spelling.
_AUTHORS_SPELLING = re.compile(r"B_(\d+)-Wi_(\d+)(?:-E_(\d+))?")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name. `width` is m (MLPs) or the channel dimension d (ResMLP)."""

    family: Family
    depth: int
    width: int
    expansion: int = DEFAULT_EXPANSION
    patch: int | None = None  # ResMLP only

    @property
    def name(self) -> str:
        """The canonical spelling of this model."""
        if self.family == "bottleneck":
            suffix = "" if self.expansion == DEFAULT_EXPANSION else f"/E-{self.expansion}"
            return f"B-{self.depth}/Wi-{self.width}{suffix}"
        if self.family == "standard":
            return f"S-{self.depth}/Wi-{self.width}"
        return f"ResMLP-{self.depth}/{self.width}/{self.patch}"

    def check_input(self, num_classes: int, resolution: int) -> None:
        """Raise ModelNameError when this model cannot be built for these data."""
        if num_classes < 1:
            raise ModelNameError(
                f"model {self.name!r} needs at least 1 class, got {num_classes}; "
                "pass the number of classes of the dataset"
            )
        if resolution < 1:
            raise ModelNameError(
                f"model {self.name!r} needs a positive input resolution, got {resolution}"
            )
        if self.patch is not None and resolution % self.patch:
            raise ModelNameError(
                f"resolution {resolution} is not divisible by the patch size {self.patch} of "
                f"{self.name!r}; use a resolution that is a multiple of {self.patch} "
                "or another patch size"
            )


def parse_model_name(name: str) -> ModelSpec:
    """Parse `B-12/Wi-1024`, `B-6/Wi-512/E-8`, `S-6/Wi-1024` or `ResMLP-12/384/16`."""
    for family, pattern in _PATTERNS.items():
        match = pattern.fullmatch(name.strip())
        if match is None:
            continue
        numbers = {key: int(value) for key, value in match.groupdict().items() if value}
        for key, value in numbers.items():
            if value < 1:
                raise ModelNameError(
                    f"model name {name!r}: {key} must be a positive integer, got {value}; {GRAMMAR}"
                )
        return ModelSpec(family=family, **numbers)
    authors = _AUTHORS_SPELLING.fullmatch(name.strip())
    if authors is not None:
        depth, width, expansion = authors.groups()
        spec = ModelSpec("bottleneck", int(depth), int(width), int(expansion or DEFAULT_EXPANSION))
        suggestion = spec.name
        raise ModelNameError(f"model name {name!r} does not parse; did you mean {suggestion!r}?")
    raise ModelNameError(f"model name {name!r} does not parse; {GRAMMAR}")


def canonical_model(name: str) -> str:
    """The canonical spelling of a model name that parses; any other name (an imported
    result may name a model scalelab does not build) is returned stripped, as given."""
    try:
        return parse_model_name(name).name
    except ModelNameError:
        return name.strip()
