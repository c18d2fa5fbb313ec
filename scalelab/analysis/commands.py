"""What `scalelab fit` and `scalelab plan` do against a results database.

A fit is computed completely before anything is written: on any error nothing is stored.
Both read the sweeps chosen with ``sweeps`` (default: every sweep), and refuse to pool sweeps
whose recipes differ unless ``pool_sweeps`` (scalelab.store.studies).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from scalelab.analysis.plan import check_budget, plan_budget
from scalelab.analysis.report import RESULT_VERSION, fit_scaling
from scalelab.errors import FitError


def _check_writable(path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():
        raise FitError(
            f"cannot write {path}: there is no directory {path.parent}; create it or give "
            "another --json path"
        )


FINGERPRINT_COLUMNS = [
    "checkpoint_id",
    "sweep",
    "status",
    "method",
    "error",
    "upstream_error",
    "validation_error",
    "compute",
    "params",
    "examples",
    "epochs",
    "seed",
    "setting",
]


def inputs_fingerprint(runs: pd.DataFrame, target: str, **options: object) -> str:
    """A hash of everything a fit of ``target`` depends on: its rows and the fit's options.

    A stored fit with the same fingerprint is the fit that would be computed now, so `fit`
    and `plot` reuse it instead of spending a bootstrap again (a re-run demo takes seconds).
    """
    columns = [c for c in FINGERPRINT_COLUMNS if c in runs]
    rows = runs[runs["target"] == target][columns].sort_values(["checkpoint_id", "method"])
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    digest.update(pd.util.hash_pandas_object(rows, index=False).values.tobytes())
    return digest.hexdigest()


def current_fit(
    db: str | None,
    runs: pd.DataFrame,
    target: str,
    *,
    store: bool,
    epochs: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    method: str | None = None,
    pool_sweeps: bool = False,
    loss: str = "log",
) -> dict:
    """The latest stored fit of ``target`` if its inputs are unchanged, else a new fit (stored
    when ``store``). The result's ``reused`` says which. SweepError when the rows of
    ``target`` come from sweeps with different recipes, unless ``pool_sweeps``."""
    from scalelab.store.engine import open_engine
    from scalelab.store.results import latest_fit, save_fit
    from scalelab.store.studies import sweeps_for

    engine = open_engine(db, create=False)
    sweeps_for(engine, runs, target, pool=pool_sweeps)
    options = {"epochs": epochs, "bootstrap": bootstrap, "seed": seed, "method": method}
    if loss != "log":  # only then: fits stored before --loss existed keep their fingerprint
        options["loss"] = loss
    fingerprint = inputs_fingerprint(runs, target, result_version=RESULT_VERSION, **options)
    stored = latest_fit(engine, target)
    if stored is not None and stored.get("fingerprint") == fingerprint:
        return {**stored, "reused": True}
    result = fit_scaling(runs, target, **options)
    result["fingerprint"] = fingerprint
    result["options"] = options  # so that `plan` can tell whether the fit is still current
    if store:
        result["fit_id"] = save_fit(engine, target, result, result["checkpoint_ids"])
    return {**result, "reused": False}


def fit_and_store(
    db: str | None,
    target: str,
    *,
    epochs: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    method: str | None = None,
    loss: str = "log",
    json_path: Path | None = None,
    sweeps: list[str] | None = None,
    pool_sweeps: bool = False,
) -> dict:
    """Load the runs of ``db`` (of ``sweeps``), fit ``target`` (Eq. 5 with ``loss``), store the
    fit with the ids of its points, write it to ``json_path`` if given, and return it with its
    ``fit_id``."""
    from scalelab import load_runs

    _check_writable(json_path)
    result = current_fit(
        db,
        load_runs(db, sweeps),
        target,
        store=True,
        epochs=epochs,
        bootstrap=bootstrap,
        seed=seed,
        method=method,
        pool_sweeps=pool_sweeps,
        loss=loss,
    )
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def plan_from_db(
    db: str | None,
    target: str,
    budget: float,
    *,
    num_classes: int,
    resolution: int,
    zoo: list[str] | None = None,
    bootstrap: int = 1000,
    epochs: float | None = None,
    refit: bool = True,
    sweeps: list[str] | None = None,
    pool_sweeps: bool = False,
) -> dict:
    """plan_budget on the latest stored fit of ``target``, if it still describes today's rows
    (its fingerprint, with its own options). Otherwise fit afresh (``bootstrap`` resamples)
    and store the fit, or with ``refit=False`` raise FitError. ``epochs``: train for this T
    instead of the T the allocation was fitted at."""
    from scalelab import load_runs
    from scalelab.store.engine import open_engine
    from scalelab.store.results import latest_fit
    from scalelab.store.studies import sweeps_for

    check_budget(budget)  # before a fit that may take a while
    runs = load_runs(db, sweeps)
    engine = open_engine(db, create=False)
    sweeps_for(engine, runs, target, pool=pool_sweeps)
    fit = latest_fit(engine, target)
    note = None
    if fit is None:
        note, options = f"no stored fit for {target!r}: fitted it now", {}
    else:
        options = dict(fit.get("options") or {})
        current = inputs_fingerprint(runs, target, result_version=RESULT_VERSION, **options)
        if current != fit.get("fingerprint"):
            if not refit:
                raise FitError(
                    f"the stored fit {fit['fit_id']} of {target!r} no longer matches the runs "
                    f"(they changed, or other sweeps are selected); run `scalelab fit "
                    f"--target {target}` first, or drop --no-refit"
                )
            note = f"the stored fit {fit['fit_id']} no longer matched the runs: refitted it"
    if note is not None:
        options["bootstrap"] = bootstrap
        fit = current_fit(db, runs, target, store=True, pool_sweeps=pool_sweeps, **options)
        note += f" (fit id {fit['fit_id']})"
    plan = plan_budget(
        fit, budget, zoo, num_classes=num_classes, resolution=resolution, epochs=epochs
    )
    if note is not None:
        plan["notes"].insert(0, note)
    return plan
