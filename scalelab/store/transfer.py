"""Export results to CSV/Parquet and import results obtained elsewhere.

An imported CSV needs the columns ``model, params, examples, epochs, target, error`` and may
have ``flops`` (FLOP(f) per example, one multiply-accumulate = one FLOP; default: params,
since FLOP(f) ≈ P for an MLP), ``compute`` (C; default flops·3·N·T per Eq. 4) and ``seed``.
Importing the same file twice changes nothing: rows are keyed by (sweep, model, params, N,
seed, flops) → T → target. An import is its own sweep (named by ``sweep``, default the file's
stem); several files imported under one name are one sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from scalelab.errors import ImportFormatError
from scalelab.store.engine import open_engine, session_scope, take_turns
from scalelab.store.results import (
    FLOP_CONVENTION,
    CheckpointMetrics,
    ProbeRecord,
    probe_row,
    replace_checkpoint,
    runs_frame,
)
from scalelab.store.schema import Checkpoint, Job, ProbeResultRow, Sweep

REQUIRED = ("model", "params", "examples", "epochs", "target", "error")
OPTIONAL = ("flops", "compute", "seed")
IMPORT_METHOD = "import"


def export_runs(
    engine: Engine, out: str | os.PathLike[str], sweeps: list[str] | None = None
) -> int:
    """Write every (checkpoint, target) row (of ``sweeps``) to .csv or .parquet; returns the
    row count."""
    from scalelab.store.studies import check_sweep_names

    out = Path(out)
    if sweeps is not None:
        check_sweep_names(engine, sweeps)
    frame = runs_frame(engine, sweeps)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    elif out.suffix == ".parquet":
        try:
            frame.to_parquet(out, index=False)
        except ImportError:
            raise ImportFormatError(
                "writing Parquet needs pyarrow: pip install 'scalelab[parquet]', or use .csv"
            ) from None
    else:
        raise ImportFormatError(
            f"{out}: unknown format {out.suffix!r}; use a .csv or .parquet file"
        )
    return len(frame)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ImportFormatError(f"{path}: not a readable CSV ({first})") from None


def _validate(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ImportFormatError(
            f"{path}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})"
        )
    if frame.empty:
        raise ImportFormatError(f"{path}: no rows to import")
    frame = frame.copy()
    for column in [*REQUIRED[1:4], "error", *(c for c in OPTIONAL if c in frame)]:
        values = pd.to_numeric(frame[column], errors="coerce")
        if column in REQUIRED:
            bad = ~np.isfinite(values)
        else:  # an optional column may be left empty in some rows
            bad = (values.isna() & frame[column].notna()) | np.isinf(values)
        if bad.any():
            row = int(bad.idxmax())
            raise ImportFormatError(
                f"{path}: line {row + 2}: {column} = {frame[column][row]!r} is not a finite "
                "number; fix or drop that row"
            )
        frame[column] = values
    for column, floor, word in (
        ("params", 0, "> 0"),
        ("examples", 0, "> 0"),
        ("error", 0, "> 0 (an error rate or a loss)"),
    ):
        bad = frame[column] <= floor
        if bad.any():
            row = int(bad.idxmax())
            raise ImportFormatError(
                f"{path}: line {row + 2}: {column} must be {word}, got {frame[column][row]}"
            )
    bad = frame["epochs"] < 0
    if bad.any():
        row = int(bad.idxmax())
        raise ImportFormatError(f"{path}: line {row + 2}: epochs must be ≥ 0")
    return frame


@dataclass(frozen=True)
class ImportReport:
    rows: int
    jobs_added: int
    checkpoints: int


def import_runs(
    db: str | os.PathLike[str] | None, path: str | os.PathLike[str], sweep: str | None = None
) -> ImportReport:
    """Import results obtained elsewhere so that fits and plots work on them without training.

    The file is read and checked before the database is opened: a bad file creates nothing.
    """
    from scalelab.models.names import canonical_model

    path = Path(path)
    frame = _validate(path, _read_table(path))
    name = (sweep if sweep is not None else path.stem).strip()
    if not name:
        raise ImportFormatError("the sweep name is empty; give --sweep NAME")
    frame["model"] = [canonical_model(str(m)) for m in frame["model"]]
    if "seed" not in frame:
        frame["seed"] = 0
    frame["seed"] = frame["seed"].fillna(0).astype(int)
    has_flops = "flops" in frame
    if not has_flops:
        frame["flops"] = frame["params"]
    frame["flops"] = frame["flops"].fillna(frame["params"])
    convention = FLOP_CONVENTION if has_flops else "params"  # "params": FLOP(f) taken as P
    text = path.read_bytes()
    sweep_hash = hashlib.sha256(text).hexdigest()
    jobs_added = checkpoints = 0
    with session_scope(open_engine(db)) as session:
        take_turns(session, "sweeps")
        if session.scalar(select(Sweep.id).where(Sweep.name == name, Sweep.source != "import")):
            raise ImportFormatError(
                f"sweep {name!r} holds runs from a grid; name the import with --sweep OTHER"
            )
        sweep = session.scalars(
            select(Sweep).where(Sweep.name == name, Sweep.grid_hash == sweep_hash)
        ).first()
        if sweep is None:
            sweep = Sweep(
                name=name,
                grid_text=f"imported from {path.name}",
                grid_hash=sweep_hash,
                source="import",
            )
            session.add(sweep)
            session.flush()
        keys = ["model", "params", "examples", "seed", "flops"]
        for (model, params, examples, seed, flops), runs in frame.groupby(keys, sort=False):
            identity = {
                "imported": True,
                "sweep": name,
                "model": str(model),
                "params": int(params),
                "examples": int(examples),
                "seed": int(seed),
                "flops": float(flops),
            }
            config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
            job = session.scalars(select(Job).where(Job.config_hash == config_hash)).first()
            epochs = sorted({float(t) for t in runs["epochs"]})
            if job is None:
                job = Job(
                    sweep_id=sweep.id,
                    config={**identity, "flop_convention": convention},
                    config_hash=config_hash,
                    model=str(model),
                    params=int(params),
                    flops=float(flops),
                    examples=int(examples),
                    seed=int(seed),
                    epochs=epochs,
                    status="done",
                    attempts=0,
                    max_attempts=0,
                    claim_token=0,
                )
                session.add(job)
                session.flush()
                jobs_added += 1
            else:
                job.epochs = sorted(set(job.epochs) | set(epochs))
            for t, at_t in runs.groupby("epochs", sort=True):
                compute = float(flops) * 3 * float(examples) * float(t)
                if "compute" in at_t and at_t["compute"].notna().any():
                    compute = float(at_t["compute"].dropna().iloc[0])
                existing = session.scalars(
                    select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.epochs == t)
                ).first()
                if existing is None:
                    existing = replace_checkpoint(
                        session,
                        job.id,
                        CheckpointMetrics(epochs=float(t), flops=float(flops), compute=compute),
                        device="import",
                    )
                    existing.flop_convention = convention
                    checkpoints += 1
                else:
                    existing.compute = compute
                for _, row in at_t.iterrows():
                    session.query(ProbeResultRow).filter_by(
                        checkpoint_id=existing.id, target=str(row["target"]), method=IMPORT_METHOD
                    ).delete()
                    session.add(
                        probe_row(
                            existing.id,
                            ProbeRecord(
                                target=str(row["target"]),
                                method=IMPORT_METHOD,
                                error=float(row["error"]),
                                details={"source": path.name},
                            ),
                        )
                    )
    return ImportReport(rows=len(frame), jobs_added=jobs_added, checkpoints=checkpoints)
