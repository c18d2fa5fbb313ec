"""Grid files: a TOML description of a sweep, validated and expanded into job configs.

```toml
name = "demo"                 # sweep name
dataset = "synthetic"         # "synthetic:pose_zipf=2" for a lighter pose tail, or the folder
                              # written by `scalelab prepare imagenet21k`
resolution = 16               # input side in pixels (the paper: 64)
models = ["B-2/Wi-128", "B-4/Wi-256"]
examples = [2000, 8000]       # N, pretraining examples (class-stratified, nested subsets)
epochs = [1, 2, 4]            # T, evaluated on the way to the largest
seeds = [0]

[train]                       # any value may be a list to sweep
lr = [1e-4, 3e-4]

[probe]
targets = ["synthetic-cifar100"]
method = "ridge"
```

With a constant learning rate a list of T is one job evaluated at every T (the paper's
checkpoints equal separate runs); a schedule that depends on T makes one job per T.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.errors import GridError
from scalelab.isoflop import IsoflopRun, isoflop_runs, parse_isoflop

CONFIG_VERSION = 1

# The paper's scaling recipe (Appendix A.4). Every key may be overridden, or swept with a list.
TRAIN_DEFAULTS: dict[str, Any] = {
    "optimizer": "lion",
    "lr": 1e-5,
    "weight_decay": 1e-3,
    "beta1": 0.9,
    "beta2": 0.99,
    "batch_size": 16384,
    "accumulation_steps": 1,  # micro-batches per batch: a batch larger than memory still fits
    "label_smoothing": 0.3,
    "mixup": 0.8,
    "flip": True,
    "crop_scale": [0.08, 1.0],  # random-resized crops: area fraction, as the authors' FFCV
    "crop_ratio": [0.75, 4 / 3],  # and width/height range
    "schedule": "constant",
    "warmup_epochs": 0,
    "heldout_examples": 10000,
    "compile": False,
    "precision": "tf32",  # the authors': float32 with TF32 matmuls; "bf16" for autocast
}
SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("lion", "adamw", "sgd")
PRECISIONS = ("tf32", "bf16")
# [train] keys added after version 1, with the value that jobs stored before them ran with:
# a config holding that value hashes as if the key were absent, so enqueuing an older
# database's grid again finds its jobs instead of adding duplicates. (Before `precision`,
# CUDA jobs trained under bf16 autocast and CPU jobs in float32; both are found as "tf32".)
HASH_OMITTED_DEFAULTS: dict[str, Any] = {k: TRAIN_DEFAULTS[k] for k in ("crop_ratio", "precision")}
PROBE_DEFAULTS: dict[str, Any] = {"targets": [], "method": "ridge", "settings": {}}
PROBE_METHODS = ("ridge", "lion", "logreg")
TOP_KEYS = {
    "name": str,
    "description": str,
    "dataset": str,
    "resolution": int,
    "classes": int,
    "models": list,
    "examples": list,
    "epochs": list,
    "seeds": list,
    "baseline": bool,
    "max_attempts": int,
    "train": dict,
    "probe": dict,
    "isoflop": dict,  # budgets instead of examples: see scalelab/isoflop.py
}
REQUIRED_KEYS = ("name", "models", "examples", "epochs")


@dataclass(frozen=True)
class JobPlan:
    """One job of a grid: its canonical config and identity."""

    config: dict[str, Any]
    config_hash: str
    model: str
    params: int
    flops: int
    examples: int
    seed: int
    epochs: list[int]

    @property
    def planned_compute(self) -> float:
        """Eq. 4 for training to the largest T."""
        return float(self.flops) * 3 * self.examples * max(self.epochs)


@dataclass(frozen=True)
class Grid:
    name: str
    path: str
    text: str
    text_hash: str
    max_attempts: int
    jobs: list[JobPlan] = field(default_factory=list)
    isoflop: list[IsoflopRun] = field(default_factory=list)  # an IsoFLOP grid's profile table
    # What will run, keyed as in the grid file with every default filled in (a swept key
    # keeps its list): {"train": {...}, "probe": {"targets", "method", "settings"}}.
    recipe: dict[str, Any] = field(default_factory=dict)


def config_hash(config: dict[str, Any]) -> str:
    """Identity of a job: everything that changes what is trained, not what is evaluated.

    The evaluation epochs (for a constant schedule), probe settings and attempt caps are left
    out, so that adding a T or a target extends existing jobs instead of duplicating them;
    so are [train] keys newer than the stored jobs while they hold HASH_OMITTED_DEFAULTS.
    """
    identity = {k: v for k, v in config.items() if k not in ("epochs", "probe")}
    if isinstance(identity.get("train"), dict):
        identity["train"] = {
            k: v
            for k, v in identity["train"].items()
            if k not in HASH_OMITTED_DEFAULTS or v != HASH_OMITTED_DEFAULTS[k]
        }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, flags=re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


class _Checker:
    """Validation with messages that point at file:line and say how to fix it."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    def error(self, key: str, message: str) -> GridError:
        line = _line_of(self.text, key.split(".")[-1])
        where = f"{self.path}:{line}" if line else self.path
        return GridError(f"{where}: {message}")

    def unknown(self, key: str, allowed: list[str], section: str) -> GridError:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(sorted(allowed))}"
        return self.error(key, f"unknown key '{key}' in {section}; {hint}")

    def positive_ints(self, key: str, value: Any, *, allow_zero: bool = False) -> list[int]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.error(key, f"'{key}' is an empty list; give at least one value")
        floor = 0 if allow_zero else 1
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.error(key, f"'{key}' must hold integers, got {v!r}")
            if v < floor:
                raise self.error(key, f"'{key}' must be > 0, got {v}")
        if len(set(values)) != len(values):
            raise self.error(key, f"'{key}' lists a value twice: {values}")
        return sorted(values)


def _check_train_value(chk: _Checker, key: str, value: Any) -> None:
    default = TRAIN_DEFAULTS[key]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    elif isinstance(default, list):
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and 0 < value[0] <= value[1]
            and (key != "crop_scale" or value[1] <= 1)  # an area fraction; a ratio may pass 1
        )
    else:
        ok = isinstance(value, str)
    if not ok:
        raise chk.error(
            key, f"[train] {key} = {value!r} has the wrong type; expected like {default!r}"
        )
    if key in ("batch_size", "accumulation_steps") and value < 1:
        raise chk.error(key, f"[train] {key} must be ≥ 1")
    if key == "schedule" and value not in SCHEDULES:
        raise chk.error(key, f"[train] schedule {value!r} is unknown; use one of {SCHEDULES}")
    if key == "optimizer" and value not in OPTIMIZERS:
        raise chk.error(key, f"[train] optimizer {value!r} is unknown; use one of {OPTIMIZERS}")
    if key == "precision" and value not in PRECISIONS:
        raise chk.error(key, f"[train] precision {value!r} is unknown; use one of {PRECISIONS}")


def _train_sweep(chk: _Checker, train: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the [train] values that are lists (a list sweeps)."""
    axes: list[list[tuple[str, Any]]] = []
    for key, value in train.items():
        if key not in TRAIN_DEFAULTS:
            raise chk.unknown(key, list(TRAIN_DEFAULTS), "[train]")
        list_valued = isinstance(TRAIN_DEFAULTS[key], list)
        sweeps = isinstance(value, list) and (not list_valued or isinstance(value[0], list))
        choices = value if sweeps else [value]
        if not choices:
            raise chk.error(key, f"[train] {key} is an empty list; give at least one value")
        for choice in choices:
            _check_train_value(chk, key, choice)
        axes.append([(key, c) for c in choices])
    combos = []
    for combo in itertools.product(*axes):
        combos.append({**TRAIN_DEFAULTS, **dict(combo)})
    return combos


def _probe_config(chk: _Checker, probe: dict[str, Any]) -> dict[str, Any]:
    from scalelab.data import DATA_TARGETS

    for key in probe:
        if key not in PROBE_DEFAULTS:
            raise chk.unknown(key, list(PROBE_DEFAULTS), "[probe]")
    cfg = {**PROBE_DEFAULTS, **probe}
    targets = cfg["targets"]
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise chk.error("targets", "[probe] targets must be a list of names")
    for target in targets:
        if target not in DATA_TARGETS:
            close = difflib.get_close_matches(target, DATA_TARGETS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(DATA_TARGETS)}"
            raise chk.error("targets", f"[probe] unknown target '{target}'; {hint}")
    if cfg["method"] not in PROBE_METHODS:
        raise chk.error(
            "method", f"[probe] method {cfg['method']!r} is unknown; use one of {PROBE_METHODS}"
        )
    if not isinstance(cfg["settings"], dict):
        raise chk.error("settings", "[probe] settings must be a table, e.g. settings = {}")
    _check_probe_settings(chk, cfg["method"], cfg["settings"])
    return cfg


def _recipe(chk: _Checker, train: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    settings = _check_probe_settings(chk, probe["method"], probe["settings"])
    return {
        "train": {**TRAIN_DEFAULTS, **train},
        "probe": {"targets": probe["targets"], "method": probe["method"], "settings": settings},
    }


SUBSET_SETTINGS = ("train_examples", "test_examples")  # any method: probe on a subset


def _check_probe_settings(chk: _Checker, method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The method's settings with defaults filled in; fails at enqueue, not at the first
    checkpoint of every job, on a bad one."""
    from scalelab.errors import ProbeError
    from scalelab.probe import resolve_settings

    subset = {key: settings[key] for key in SUBSET_SETTINGS if key in settings}
    for key, n in subset.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise chk.error("settings", f"[probe] settings.{key} must be an integer > 0")
    try:
        resolved = resolve_settings(
            method, {k: v for k, v in settings.items() if k not in SUBSET_SETTINGS}
        )
    except ProbeError as exc:
        raise chk.error("settings", f"[probe] {exc}") from None
    return {**resolved, **subset}


def _dataset(chk: _Checker, doc: dict[str, Any]) -> str:
    """The pretraining set's name, with the embedded world's options checked and written one
    way ("synthetic:pose_zipf=1.5" is "synthetic": the same jobs)."""
    from scalelab.data import synthetic
    from scalelab.errors import DataError

    dataset = doc.get("dataset", synthetic.DATASET)
    if not synthetic.is_synthetic(dataset):
        return dataset
    try:
        return synthetic.canonical_dataset(synthetic.pose_zipf_of(dataset))
    except DataError as exc:
        raise chk.error("dataset", str(exc)) from None


def _dataset_classes(
    chk: _Checker, dataset: str, doc: dict[str, Any], resolution: int
) -> tuple[int, int | None]:
    """Number of classes and examples of the pretraining set (examples unknown if not read)."""
    if "classes" in doc:
        classes = doc["classes"]
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise chk.error("classes", f"'classes' must be an integer ≥ 2, got {classes!r}")
        return classes, None
    from scalelab.data import pretraining_info
    from scalelab.errors import DataError

    try:
        return pretraining_info(dataset, resolution)
    except DataError as exc:
        raise chk.error(
            "dataset", f"{exc} (or set classes = K in the grid to plan without the data)"
        ) from None


def _canonical_models(chk: _Checker, models: list[str]) -> list[str]:
    """The canonical spelling of every model (B-01/Wi-016/E-4 is B-1/Wi-16), before hashing:
    one network is one job however it is spelled, and its canonical name is the one stored."""
    from scalelab.errors import ModelNameError
    from scalelab.models.names import parse_model_name

    spelled: dict[str, str] = {}
    for model in models:
        try:
            name = parse_model_name(model).name
        except ModelNameError as exc:
            raise chk.error("models", str(exc)) from None
        if name in spelled:
            raise chk.error(
                "models",
                f"'models' lists {name} twice (as {spelled[name]!r} and {model!r}); "
                "remove one: they are the same network",
            )
        spelled[name] = model
    return list(spelled)


def parse_grid(path: str | Path, text: str | None = None) -> Grid:
    """Read and validate a grid file and expand it into jobs. Raises GridError."""
    from scalelab.errors import ModelNameError
    from scalelab.flops import model_cost

    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise GridError(
                f"{path}: no such grid file; see grids/demo.toml for an example"
            ) from None
        except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
            raise GridError(
                f"{path}: cannot read the grid file ({exc.__class__.__name__})"
            ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if match:
            msg = msg[: match.start()].strip()
            raise GridError(
                f"{path}:{match.group(1)}:{match.group(2)}: invalid TOML: {msg}; fix the syntax"
            ) from None
        raise GridError(f"{path}: invalid TOML: {msg}; fix the syntax") from None

    chk = _Checker(path, text)
    for key, value in doc.items():
        if key not in TOP_KEYS:
            raise chk.unknown(key, list(TOP_KEYS), "the grid")
        expected = TOP_KEYS[key]
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            raise chk.error(key, f"'{key}' must be a {expected.__name__}, got {value!r}")
    spec = parse_isoflop(chk, doc["isoflop"], doc) if "isoflop" in doc else None
    if spec is not None:  # models and T from [isoflop]; N comes from its budgets, not examples
        doc = {**doc, "models": spec.models, "examples": [1], "epochs": [spec.epochs]}
    for key in REQUIRED_KEYS:
        if key not in doc:
            raise GridError(f"{path}: missing required key '{key}'; see grids/demo.toml")
    name = doc["name"].strip()
    if not name:
        raise chk.error("name", "'name' is empty; name the sweep")
    resolution = doc.get("resolution", 64)
    if resolution < 1:
        raise chk.error("resolution", f"'resolution' must be > 0, got {resolution}")
    models = doc["models"]
    if not models:
        raise chk.error(
            "models", "'models' is an empty list; give at least one, e.g. \"B-6/Wi-256\""
        )
    if not all(isinstance(m, str) for m in models):
        raise chk.error("models", "'models' must be a list of model names like \"B-6/Wi-256\"")
    examples = chk.positive_ints("examples", doc["examples"])
    epochs = chk.positive_ints("epochs", doc["epochs"])
    seeds = chk.positive_ints("seeds", doc.get("seeds", [0]), allow_zero=True)
    max_attempts = doc.get("max_attempts", 3)
    if max_attempts < 1:
        raise chk.error("max_attempts", "'max_attempts' must be ≥ 1")
    trains = _train_sweep(chk, doc.get("train", {}))
    probe = _probe_config(chk, doc.get("probe", {}))
    dataset = _dataset(chk, doc)
    classes, available = _dataset_classes(chk, dataset, doc, resolution)
    if spec is None and available is not None and max(examples) > available:
        raise chk.error(
            "examples",
            f"N = {max(examples)} is larger than the dataset ({available} examples); "
            "lower 'examples'",
        )
    models = _canonical_models(chk, models)
    costs = {}
    for model in models:
        try:
            costs[model] = model_cost(model, classes, resolution)
        except ModelNameError as exc:
            raise chk.error("models", str(exc)) from None
    eval_epochs = ([0] if doc.get("baseline", False) else []) + epochs
    profile = [] if spec is None else isoflop_runs(spec, costs, available)
    pairs = (
        list(dict.fromkeys((r.model, r.examples) for r in profile if r.skipped is None))
        if spec is not None
        else list(itertools.product(models, examples))
    )
    if not pairs:
        raise chk.error("budgets", f"no run of [isoflop] fits the data: {profile[0].skipped}")

    jobs: list[JobPlan] = []
    for (model, n), seed, train in itertools.product(pairs, seeds, trains):
        per_t = train["schedule"] != "constant"  # a schedule over T: one job per T
        for t_list in [[t] for t in epochs] if per_t else [epochs]:
            config: dict[str, Any] = {
                "version": CONFIG_VERSION,
                "dataset": dataset,
                "resolution": resolution,
                "classes": classes,
                "model": model,
                "examples": n,
                "seed": seed,
                "train": train,
                "epochs": ([0] if doc.get("baseline", False) else []) + t_list
                if per_t
                else eval_epochs,
                "probe": probe,
            }
            if per_t:
                config["train_epochs"] = t_list[0]
            jobs.append(
                JobPlan(
                    config=config,
                    config_hash=config_hash(config),
                    model=model,
                    params=costs[model].params,
                    flops=costs[model].flops,
                    examples=n,
                    seed=seed,
                    epochs=config["epochs"],
                )
            )
    return Grid(
        name=name,
        path=path,
        text=text,
        text_hash=hashlib.sha256(text.encode()).hexdigest(),
        max_attempts=max_attempts,
        jobs=jobs,
        isoflop=profile,
        recipe=_recipe(chk, doc.get("train", {}), probe),
    )
