"""Which sweeps a number comes from: a fit pools sweeps only when their recipes agree.

A study is one results database; a sweep is one grid (or one imported file, named by
``import --sweep``) inside it. Runs of several sweeps are fitted together only when every
sweep's resolved recipe is the same: the same sets of dataset, resolution, probe method and
settings, and [train] values (a swept list counts as its set of values). Imported sweeps carry
no recipe, so they pool only with themselves. ``pool`` overrides the check.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from scalelab.errors import SweepError
from scalelab.store.engine import session_scope
from scalelab.store.schema import Job, Sweep

POOL_HINT = "pass --sweep NAME to use one of them, or --pool-sweeps to pool them"


def check_sweep_names(engine: Engine, names: list[str]) -> None:
    """SweepError naming the sweeps that exist when one of ``names`` does not."""
    with session_scope(engine, write=False) as session:
        known = sorted(set(session.scalars(select(Sweep.name))))
    missing = [n for n in names if n not in known]
    if missing:
        raise SweepError(
            f"no sweep named {', '.join(repr(n) for n in missing)}; "
            f"sweeps in this database: {', '.join(known) or 'none'}"
        )


def _recipe_items(config: dict[str, Any]) -> dict[str, str]:
    """One job's recipe as flat key -> JSON value (train.lr, probe.settings, ...)."""

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    probe = config.get("probe") or {}
    items = {
        "dataset": dump(config.get("dataset")),
        "resolution": dump(config.get("resolution")),
        "probe.method": dump(probe.get("method")),
        "probe.settings": dump(probe.get("settings")),
    }
    for key, value in (config.get("train") or {}).items():
        items[f"train.{key}"] = dump(value)
    return items


def sweep_recipes(engine: Engine, names: list[str]) -> dict[str, dict[str, set[str]] | None]:
    """Per sweep name: each recipe key's set of values over its jobs; None for an import."""
    recipes: dict[str, dict[str, set[str]] | None] = {}
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sweep.name, Sweep.source, Job.config)
            .join(Job, Job.sweep_id == Sweep.id)
            .where(Sweep.name.in_(names))
        )
        for name, source, config in rows:
            if source == "import":
                recipes[name] = None
                continue
            recipe = recipes.setdefault(name, {})
            assert recipe is not None  # a name is either a grid's or an import's (import checks)
            for key, value in _recipe_items(config or {}).items():
                recipe.setdefault(key, set()).add(value)
    return recipes


def check_poolable(engine: Engine, names: list[str]) -> None:
    """SweepError unless the sweeps ``names`` have the same recipe (see module doc)."""
    if len(names) < 2:
        return
    recipes = sweep_recipes(engine, names)
    imported = [n for n in names if recipes.get(n) is None]
    if imported:
        what = ", ".join(f"{n} is imported: no recipe" for n in imported)
    else:
        keys = sorted({k for r in recipes.values() if r for k in r})
        first, *others = (recipes[n] or {} for n in names)
        differ = [k for k in keys if any(o.get(k) != first.get(k) for o in others)]
        if not differ:
            return
        what = ", ".join(differ)
    raise SweepError(f"sweeps {', '.join(names)} have different recipes ({what}); {POOL_HINT}")


def sweeps_for(engine: Engine, runs: pd.DataFrame, target: str, *, pool: bool) -> list[str]:
    """The sweeps whose rows of ``target`` a fit would use, checked for pooling unless ``pool``."""
    names = sorted(set(runs.loc[runs["target"] == target, "sweep"]))
    if not pool:
        check_poolable(engine, names)
    return names
