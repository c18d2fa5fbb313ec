"""What `scalelab fit` and `scalelab plan` do against a results database.

A fit is computed completely before anything is written: on any error nothing is stored.
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


def inputs_fingerprint(runs: pd.DataFrame, target: str, **options: object) -> str:
    """A hash of everything a fit of ``target`` depends on: its rows and the fit's options.

    A stored fit with the same fingerprint is the fit that would be computed now, so `fit`
    and `plot` reuse it instead of spending a bootstrap again (a re-run demo takes seconds).
    """
    rows = runs[runs["target"] == target][
        ["checkpoint_id", "status", "method", "error", "compute", "params", "examples", "epochs"]
    ].sort_values(["checkpoint_id", "method"])
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
    loss: str = "log",
) -> dict:
    """The latest stored fit of ``target`` if its inputs are unchanged, else a new fit (stored
    when ``store``). The result's ``reused`` says which."""
    from scalelab.store.engine import open_engine
    from scalelab.store.results import latest_fit, save_fit

    options = {"epochs": epochs, "bootstrap": bootstrap, "seed": seed, "method": method}
    if loss != "log":  # only then: fits stored before --loss existed keep their fingerprint
        options["loss"] = loss
    fingerprint = inputs_fingerprint(runs, target, result_version=RESULT_VERSION, **options)
    engine = open_engine(db, create=False)
    stored = latest_fit(engine, target)
    if stored is not None and stored.get("fingerprint") == fingerprint:
        return {**stored, "reused": True}
    result = fit_scaling(runs, target, **options)
    result["fingerprint"] = fingerprint
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
) -> dict:
    """Load the runs of ``db``, fit ``target`` (Eq. 5 with ``loss``), store the fit with the ids
    of its points, write it to ``json_path`` if given, and return it with its ``fit_id``."""
    from scalelab import load_runs

    _check_writable(json_path)
    result = current_fit(
        db,
        load_runs(db),
        target,
        store=True,
        epochs=epochs,
        bootstrap=bootstrap,
        seed=seed,
        method=method,
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
) -> dict:
    """plan_budget on the latest stored fit of ``target``; without one, fit it (with
    ``bootstrap`` resamples) and store it first."""
    from scalelab.store.engine import open_engine
    from scalelab.store.results import latest_fit

    check_budget(budget)  # before a fit that may take a while
    fit = latest_fit(open_engine(db, create=False), target)
    fitted_now = fit is None
    if fitted_now:
        fit = fit_and_store(db, target, bootstrap=bootstrap)
    plan = plan_budget(fit, budget, zoo, num_classes=num_classes, resolution=resolution)
    if fitted_now:
        plan["notes"].insert(
            0, f"no stored fit for {target!r}: fitted it now (fit id {fit['fit_id']})"
        )
    return plan
