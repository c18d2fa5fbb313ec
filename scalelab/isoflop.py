"""IsoFLOP grids: compute budgets instead of N, for Chinchilla's Approach 2.

```toml
[isoflop]
budgets = [1e13, 3e13, 1e14]   # C in FLOP (one multiply-accumulate = one FLOP)
models = ["B-2/Wi-64", "B-2/Wi-128", "B-4/Wi-128", "B-4/Wi-256"]
epochs = 1                     # one T: each budget then fixes N
```

For each budget and model, N = C / (3·FLOP(f)·T) (Eq. 4 solved for N), rounded to whole
examples. A pair whose N is below one example or above the pretraining set is left out (a run
off its budget would sit in no profile) and listed with the reason by `enqueue --dry-run`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

ISOFLOP_KEYS = ("budgets", "models", "epochs")


class _Checker(Protocol):  # grid._Checker: errors that point at the grid's file and line
    def error(self, key: str, message: str) -> Exception: ...

    def unknown(self, key: str, allowed: list[str], section: str) -> Exception: ...


@dataclass(frozen=True)
class IsoflopSpec:
    budgets: list[float]
    models: list[str]
    epochs: int


@dataclass(frozen=True)
class IsoflopRun:
    """One (budget, model) of an IsoFLOP grid: its N, its compute, or why it is left out."""

    budget: float
    model: str
    params: int
    flops: int
    examples: int
    compute: float  # FLOP(f)·3·N·T, the budget up to the rounding of N
    skipped: str | None = None


def parse_isoflop(chk: _Checker, section: Any, top_level: dict[str, Any]) -> IsoflopSpec:
    """Validate an [isoflop] table; the grid then must not give models, examples or epochs."""
    if not isinstance(section, dict):
        raise chk.error("isoflop", "[isoflop] must be a table with budgets, models and epochs")
    for key in section:
        if key not in ISOFLOP_KEYS:
            raise chk.unknown(key, list(ISOFLOP_KEYS), "[isoflop]")
    for key in ("models", "examples", "epochs"):
        if key in top_level:
            raise chk.error(
                key,
                f"'{key}' and [isoflop] both define the runs; an IsoFLOP grid takes models and "
                f"epochs from [isoflop] and derives N from its budgets: remove the top-level "
                f"'{key}'",
            )
    for key in ISOFLOP_KEYS:
        if key not in section:
            raise chk.error("isoflop", f"[isoflop] needs '{key}'; see grids/isoflop.toml")
    budgets = section["budgets"]
    if not isinstance(budgets, list) or not budgets:
        raise chk.error("budgets", "[isoflop] budgets must be a list of compute budgets in FLOP")
    for b in budgets:
        if (
            isinstance(b, bool)
            or not isinstance(b, int | float)
            or not (math.isfinite(b) and b > 0)
        ):
            raise chk.error("budgets", f"[isoflop] budgets must be positive numbers, got {b!r}")
    if len(set(budgets)) != len(budgets):
        raise chk.error("budgets", f"[isoflop] budgets lists a value twice: {budgets}")
    models = section["models"]
    if (
        not isinstance(models, list)
        or len(models) < 3
        or not all(isinstance(m, str) for m in models)
    ):
        raise chk.error(
            "models",
            "[isoflop] models must list at least 3 model names (a parabola per budget needs "
            '3 sizes), like "B-2/Wi-128"',
        )
    epochs = section["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise chk.error(
            "epochs",
            f"[isoflop] epochs must be one integer T ≥ 1 (a budget fixes N·T), got {epochs!r}",
        )
    return IsoflopSpec(sorted(float(b) for b in budgets), list(models), epochs)


def isoflop_runs(
    spec: IsoflopSpec, costs: dict[str, Any], available: int | None
) -> list[IsoflopRun]:
    """Every (budget, model) with N = round(C / (3·FLOP(f)·T)); ``costs`` maps each model to
    its ModelCost, ``available`` is the pretraining set's size (None: not known here)."""
    runs = []
    for budget in spec.budgets:
        for model in spec.models:
            cost = costs[model]
            n = round(budget / (3 * cost.flops * spec.epochs))
            skipped = None
            if n < 1:
                skipped = "N < 1: the budget does not buy one example; raise it or drop the model"
            elif available is not None and n > available:
                skipped = f"N > the {available:,} examples"
            runs.append(
                IsoflopRun(
                    budget=budget,
                    model=model,
                    params=int(cost.params),
                    flops=int(cost.flops),
                    examples=int(n),
                    compute=float(cost.flops) * 3 * n * spec.epochs,
                    skipped=skipped,
                )
            )
    return runs
