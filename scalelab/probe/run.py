"""`run_probe`: check the features, fit the chosen method, measure the test error."""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scalelab.errors import ProbeError
from scalelab.probe.gradient import EpochBatches, fit_lion, fit_logreg
from scalelab.probe.linear import LinearClassifier
from scalelab.probe.ridge import DEFAULT_PENALTIES, fit_ridge


@dataclass(frozen=True)
class ProbeResult:
    error: float  # 1 − top-1 accuracy on the test split, as a fraction
    method: str
    details: dict[str, Any] = field(default_factory=dict)  # settings and what the fit chose
    wall_seconds: float = 0.0


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _non_negative(v: Any) -> bool:
    return _positive(v) or (isinstance(v, int | float) and not isinstance(v, bool) and v == 0)


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _fraction(v: Any) -> bool:
    return _positive(v) and v < 1


def _smoothing(v: Any) -> bool:
    return _non_negative(v) and v < 1


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _positive_list(v: Any) -> bool:
    is_list = isinstance(v, Sequence) and not isinstance(v, str)
    return is_list and len(v) > 0 and all(map(_positive, v))


@dataclass(frozen=True)
class _Setting:
    default: Any
    valid: Callable[[Any], bool]
    requirement: str


@dataclass(frozen=True)
class _Method:
    fit: Callable[..., tuple[LinearClassifier, dict[str, Any]]]
    settings: dict[str, _Setting]
    augments: bool = False  # fit takes `augmented`: epochs of features of augmented images


METHODS: dict[str, _Method] = {
    "ridge": _Method(
        fit_ridge,
        {
            "penalties": _Setting(list(DEFAULT_PENALTIES), _positive_list, "a list of numbers > 0"),
            "holdout": _Setting(0.1, _fraction, "a fraction in (0, 1)"),
        },
    ),
    # The authors' `finetune.py --mode linear` (paper A.3): LION at lr 1e-5 for 50 epochs, and
    # the defaults of their get_finetune_parser for the rest.
    "lion": _Method(
        fit_lion,
        {
            "lr": _Setting(1e-5, _positive, "a number > 0"),
            "weight_decay": _Setting(0.0, _non_negative, "a number >= 0"),
            "epochs": _Setting(50, _positive_int, "an integer > 0"),
            "batch_size": _Setting(4096, _positive_int, "an integer > 0"),
            "label_smoothing": _Setting(0.3, _smoothing, "a number in [0, 1)"),
            "clip": _Setting(1.0, _non_negative, "a number >= 0 (0: no clipping)"),
            "augment": _Setting(True, _bool, "true or false"),
        },
        augments=True,
    ),
    "logreg": _Method(
        fit_logreg,
        {
            "l2": _Setting(
                [1.0, 1e-1, 1e-2, 1e-3, 1e-4],
                lambda v: _non_negative(v) or _positive_list(v),
                "a number >= 0 or a list of numbers > 0 to choose from",
            ),
            "max_iter": _Setting(100, _positive_int, "an integer > 0"),
            "holdout": _Setting(0.1, _fraction, "a fraction in (0, 1)"),
        },
    ),
}


def _method(name: str) -> _Method:
    if name in METHODS:
        return METHODS[name]
    known = ", ".join(sorted(METHODS))
    close = difflib.get_close_matches(name, METHODS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ProbeError(f"unknown probe method {name!r}; {hint}(methods: {known})")


def resolve_settings(method: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The method's defaults overridden by `settings`, each checked; what a probe records."""
    spec = _method(method).settings
    given = dict(settings or {})
    for key, value in given.items():
        if key not in spec:
            raise ProbeError(
                f"unknown setting {key!r} for probe method {method!r}; "
                f"settings: {', '.join(sorted(spec))}"
            )
        if not spec[key].valid(value):
            requirement = spec[key].requirement
            raise ProbeError(
                f"probe setting {key}={value!r} for method {method!r} must be {requirement}"
            )
    return {key: given.get(key, s.default) for key, s in spec.items()}


def _features(values: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(values)
    return x if x.is_floating_point() else x.float()


def _check_split(name: str, x: Tensor, y: Tensor, num_classes: int) -> None:
    if x.ndim != 2:
        raise ProbeError(
            f"{name} features must be a 2-D (examples, features) tensor, got shape {tuple(x.shape)}"
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ProbeError(
            f"{name} labels have shape {tuple(y.shape)} but {name} features have "
            f"{x.shape[0]} rows; pass one label per feature row"
        )
    if x.shape[0] == 0:
        raise ProbeError(f"the {name} split is empty; a probe needs examples in both splits")
    if y.min() < 0 or y.max() >= num_classes:
        raise ProbeError(
            f"{name} labels must lie in [0, {num_classes}), found {int(y.min())}..{int(y.max())}; "
            "pass the target's num_classes"
        )
    # min and max propagate NaN and show ±inf: a cheap test; the row count is for the message.
    if not torch.isfinite(torch.stack(torch.aminmax(x))).all():
        bad_rows = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ProbeError(
            f"{name} features contain NaN or inf in {bad_rows} of {x.shape[0]} rows; "
            "the encoder's output is not finite, probe a checkpoint that did not diverge"
        )


def run_probe(
    train_x: Tensor | np.ndarray,
    train_y: Tensor | np.ndarray,
    test_x: Tensor | np.ndarray,
    test_y: Tensor | np.ndarray,
    num_classes: int,
    method: str = "ridge",
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    augmented: EpochBatches | None = None,
) -> ProbeResult:
    """Fit a linear probe on (train_x (n, D), train_y (n,)) and return its test error.

    The probe runs on the device of train_x; `ridge` and `logreg` standardise the features
    with the training split's mean and standard deviation first, `lion` (the authors') does
    not. `augmented` supplies the `lion` probe's augmented epochs (see `probe_encoder`).

    Example: run_probe(train_feats, train_labels, test_feats, test_labels, 10, method="ridge")
    """
    start = time.perf_counter()
    spec = _method(method)
    options = resolve_settings(method, settings)
    if num_classes < 2:
        raise ProbeError(f"num_classes is {num_classes}; a probe needs at least two classes")
    train_x = _features(train_x)
    test_x = _features(test_x).to(train_x.device)
    train_y = torch.as_tensor(train_y).to(device=train_x.device, dtype=torch.int64)
    test_y = torch.as_tensor(test_y).to(device=train_x.device, dtype=torch.int64)
    _check_split("train", train_x, train_y, num_classes)
    _check_split("test", test_x, test_y, num_classes)
    if test_x.shape[1] != train_x.shape[1]:
        raise ProbeError(
            f"test features have {test_x.shape[1]} columns but train features have "
            f"{train_x.shape[1]}; extract both splits with the same encoder"
        )
    present = torch.bincount(train_y, minlength=num_classes).nonzero()
    if present.numel() < 2:
        raise ProbeError(
            f"the training split has only one class ({int(present[0])}); a probe needs at "
            "least two classes, use a larger or stratified training split"
        )
    images = {"augmented": augmented} if spec.augments else {}
    classifier, fitted = spec.fit(train_x, train_y, num_classes, seed=seed, **options, **images)
    error = classifier.error(test_x, test_y)
    details = {
        "standardised": True,
        **options,
        **fitted,
        "seed": seed,
        "train_examples": int(train_x.shape[0]),
        "test_examples": int(test_x.shape[0]),
        "feature_dim": int(train_x.shape[1]),
        "num_classes": num_classes,
    }
    return ProbeResult(error, method, details, time.perf_counter() - start)
