"""The `scalelab` command line: a thin typer layer over the library.

Each command parses its options, calls one library function and prints the result. Typed
errors (scalelab.errors.ScalelabError) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from scalelab.errors import ScalelabError

app = typer.Typer(
    name="scalelab",
    help=(
        "Scaling laws for MLPs on vision: enqueue a grid of (model, N, T), train it with any "
        "number of workers, fit E(C) = a(b+C)^-alpha + E_inf and plot the paper's figures.\n\n"
        "Example: scalelab enqueue grids/demo.toml && scalelab run-worker --until-empty"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database maintenance: upgrade the schema, copy between backends.")
app.add_typer(db_app, name="db")

F = TypeVar("F", bound=Callable[..., Any])

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="SCALELAB_DB",
        help="Results database: a file path or SQLAlchemy URL (default ./runs.db).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ClassesOption = Annotated[
    int, typer.Option("--classes", min=1, help="Classes of the head (ImageNet-21k: 11230).")
]
ResolutionOption = Annotated[
    int, typer.Option("--resolution", min=1, help="Input resolution R (images R x R x 3).")
]
SweepOption = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        help="Only this sweep (repeatable); default: every sweep, if their recipes agree.",
        show_default=False,
    ),
]
PoolOption = Annotated[
    bool, typer.Option("--pool-sweeps", help="Pool the sweeps even where their recipes differ.")
]


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit: the only way a command reports an error."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn ScalelabError into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScalelabError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


# ── results database and queue (issue 2) ─────────────────────────────────────────────────


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console().print(table)


def _pflops(flops: float) -> str:
    pflops = flops / 1e15
    return f"{pflops:,.0f}" if pflops >= 100 else f"{pflops:.3g}"


@app.command()
@user_errors
def enqueue(
    grid: Annotated[Path, typer.Argument(help="Grid file (TOML), e.g. grids/demo.toml.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; write nothing.")] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Turn a grid into jobs (idempotent: jobs already present are not added again).

    Prints the jobs added and already present, and the planned compute per Eq. 4
    (C = FLOP(f)·3·N·T) per model and in total, in PFLOPs.

    Example: scalelab enqueue grids/demo.toml --dry-run
    """
    from scalelab.store.sweeps import enqueue_grid

    report = enqueue_grid(db, grid, dry_run=dry_run)
    if as_json:
        print_json(
            {
                "sweep": report.sweep,
                "dry_run": report.dry_run,
                "added": report.added,
                "present": report.present,
                "extended": report.extended,
                "probe_extended": report.probe_extended,
                "new_targets": report.new_targets,
                "total_pflops": report.total_compute / 1e15,
                "new_pflops": report.new_compute / 1e15,
                "recipe": report.recipe,
                "models": [
                    {
                        "model": m.model,
                        "params": m.params,
                        "flops": m.flops,
                        "jobs": m.jobs,
                        "added": m.added,
                        "pflops": m.compute / 1e15,
                        "new_pflops": m.new_compute / 1e15,
                    }
                    for m in report.models
                ],
                "isoflop": [vars(r) for r in report.isoflop],
                "elsewhere": report.elsewhere,
            }
        )
        return
    _table(
        None,
        ["model", "params", "FLOP(f)", "jobs", "added", "PFLOPs", "new PFLOPs"],
        [
            [
                m.model,
                f"{m.params / 1e6:.2f}M",
                f"{m.flops / 1e6:.2f}M",
                m.jobs,
                m.added,
                _pflops(m.compute),
                _pflops(m.new_compute),
            ]
            for m in report.models
        ]
        + [
            [
                "total",
                "",
                "",
                sum(m.jobs for m in report.models),
                report.added,
                _pflops(report.total_compute),
                _pflops(report.new_compute),
            ]
        ],
    )
    if report.isoflop:
        _table(
            "IsoFLOP profiles: N = C / (3·FLOP(f)·T)",
            ["budget C", "model", "params", "N", "C of the run", "left out"],
            [
                [
                    f"{r.budget:.3g}",
                    r.model,
                    f"{r.params / 1e6:.3g}M",
                    f"{r.examples:,}",
                    f"{r.compute:.4g}",
                    r.skipped or "",
                ]
                for r in report.isoflop
            ],
        )
    verb = "would add" if dry_run else "added"
    typer.echo(
        f"sweep {report.sweep}: {verb} {report.added} jobs, {report.present} already present"
        f" ({report.extended} extended with new epochs)"
        + (
            f"; {report.probe_extended} extended with probe work on {', '.join(report.new_targets)}"
            if report.probe_extended
            else ""
        )
    )
    for owner, count in sorted(report.elsewhere.items()):
        typer.echo(
            f"note: {count} of these jobs {'was' if count == 1 else 'were'} enqueued first by "
            f"sweep '{owner}' and belong to it: fits of sweep '{report.sweep}' do not see them "
            f"unless they read both (--sweep {report.sweep} --sweep {owner}); a grid of its own "
            "models, N or seeds keeps the sweeps apart"
        )


@app.command()
@user_errors
def status(db: DbOption = None, as_json: JsonFlag = False) -> None:
    """Jobs per state; running jobs with worker, host, age and heartbeat; failed jobs' errors.

    Example: scalelab status --json
    """
    from scalelab.store.engine import open_engine
    from scalelab.store.status import queue_status

    st = queue_status(open_engine(db, create=False))
    if as_json:
        print_json(st.to_dict())
        return
    typer.echo("  ".join(f"{state}: {n}" for state, n in st.counts.items()))
    if st.running:
        _table(
            "running",
            ["job", "model", "N", "worker", "host", "slurm", "age", "heartbeat"],
            [
                [
                    r.id,
                    r.model,
                    r.examples,
                    r.worker,
                    r.host,
                    r.slurm_job_id or "",
                    f"{r.age_s:.0f}s",
                    ("expired " if r.lease_expired else "")
                    + (f"{r.heartbeat_age_s:.0f}s ago" if r.heartbeat_age_s is not None else ""),
                ]
                for r in st.running
            ],
        )
    if st.failed:
        _table(
            "failed / diverged",
            ["job", "model", "N", "state", "attempts", "last error"],
            [[f.id, f.model, f.examples, f.status, f.attempts, f.error] for f in st.failed],
        )


@app.command()
@user_errors
def requeue(
    failed: Annotated[bool, typer.Option("--failed", help="Requeue failed jobs.")] = False,
    stale: Annotated[
        bool, typer.Option("--stale", help="Requeue running jobs whose lease expired.")
    ] = False,
    job: Annotated[list[int] | None, typer.Option("--job", help="Requeue this job id.")] = None,
    diverged: Annotated[
        bool, typer.Option("--diverged", help="With --failed, diverged jobs too.")
    ] = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Put failed, stale or chosen jobs back in the queue with a fresh attempt count.

    Example: scalelab requeue --failed
    """
    from scalelab.store.engine import open_engine
    from scalelab.store.queue import requeue as requeue_jobs

    result = requeue_jobs(
        open_engine(db, create=False),
        failed=failed,
        stale=stale,
        job_ids=job,
        include_diverged=diverged,
    )
    if as_json:
        print_json({"requeued": result.requeued})
    else:
        typer.echo(f"requeued {len(result.requeued)} jobs")


@app.command()
@user_errors
def export(
    out: Annotated[Path, typer.Option("--out", help="FILE.csv or FILE.parquet.")],
    sweep: SweepOption = None,
    db: DbOption = None,
) -> None:
    """Write every evaluated checkpoint, one row per (checkpoint, target), to CSV or Parquet.

    Example: scalelab export --out results.csv
    """
    from scalelab.store.engine import open_engine
    from scalelab.store.transfer import export_runs

    n = export_runs(open_engine(db, create=False), out, sweep)
    typer.echo(f"wrote {n} rows to {out}")


@app.command("import")
@user_errors
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with model, params, examples, epochs, target, "
            "error (optional flops, compute, seed)."
        ),
    ],
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Name of the imported sweep (default: the file's stem)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Import results obtained elsewhere, so that fit and plot work on them without training.

    Columns: model, params, examples, epochs, target, error; optional flops (FLOP(f) per
    example, 1 multiply-accumulate = 1 FLOP; default params), compute (default flops·3·N·T)
    and seed.

    Example: scalelab import results.csv --db imported.db
    """
    from scalelab.store.transfer import import_runs

    report = import_runs(db, file, sweep)
    if as_json:
        print_json(vars(report))
    else:
        typer.echo(
            f"imported {report.rows} rows: {report.jobs_added} new runs, "
            f"{report.checkpoints} new checkpoints"
        )


@db_app.command("upgrade")
@user_errors
def db_upgrade(db: DbOption = None) -> None:
    """Upgrade a results database to this scalelab's schema (alembic migrations).

    Example: scalelab db upgrade --db runs.db
    """
    from scalelab.store.migrate import upgrade_database

    before, after = upgrade_database(db)
    typer.echo(f"schema {before} -> {after}" if before != after else f"schema {after}: up to date")


# ── models and training worker (issue 3) ─────────────────────────────────────────────────


@app.command("run-worker")
@user_errors
def run_worker(
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    max_jobs: Annotated[int | None, typer.Option(help="Stop after this many jobs.")] = None,
    until_empty: Annotated[
        bool, typer.Option("--until-empty", help="Exit when the queue is empty (else poll).")
    ] = False,
    workdir: Annotated[Path, typer.Option(help="Where checkpoints are written.")] = Path("work"),
    lease_min: Annotated[
        float, typer.Option(help="Lease length: a dead worker's job is reclaimed after it.")
    ] = 10.0,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: cores / $SCALELAB_WORKERS_PER_HOST).")
    ] = None,
    time_limit_min: Annotated[
        float | None,
        typer.Option(help="Checkpoint, release the job and exit after this many minutes."),
    ] = None,
    checkpoint_min: Annotated[
        float, typer.Option(help="Also checkpoint mid-epoch every this many minutes.")
    ] = 10.0,
    stall_min: Annotated[
        float,
        typer.Option(help="Release the job and exit if it makes no progress this long (0: never)."),
    ] = 30.0,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Claim jobs from the queue and train them, with heartbeats, checkpoints and probes.

    Safe to run many at once (one per GPU, or several sharing a CPU). SIGTERM/Ctrl-C finishes
    the step, checkpoints and hands the job back; a killed worker's job is resumed by another
    after its lease expires.

    Example: scalelab run-worker --until-empty --device auto
    """
    from scalelab.train.worker import WorkerOptions
    from scalelab.train.worker import run_worker as run

    report = run(
        db,
        WorkerOptions(
            device=device,
            max_jobs=max_jobs,
            until_empty=until_empty,
            workdir=workdir,
            lease_s=lease_min * 60,
            threads=threads,
            time_limit_s=time_limit_min * 60 if time_limit_min else None,
            checkpoint_every_s=checkpoint_min * 60,
            stall_s=stall_min * 60 or None,
        ),
    )
    if as_json:
        print_json(vars(report))
    else:
        typer.echo(
            f"worker finished: {len(report.done)} done, {len(report.failed)} failed, "
            f"{len(report.diverged)} diverged, {len(report.released)} released"
        )


@app.command("model-info")
@user_errors
def model_info(
    name: Annotated[str, typer.Argument(help="Model name, e.g. B-12/Wi-1024 or ResMLP-12/384/8.")],
    classes: ClassesOption = 11230,
    resolution: ResolutionOption = 64,
    examples: Annotated[
        int | None, typer.Option("--examples", min=1, help="Training examples N, for C.")
    ] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", min=0, help="Epochs T, for C.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Parameters and FLOP(f) of a model and, given N and T, its compute C = FLOP(f)·3·N·T.

    FLOP(f) is one forward pass on one example, counted by tracing the model, in the
    paper's convention: one multiply-accumulate = one FLOP.

    Example: scalelab model-info B-12/Wi-1024 --examples 12000000 --epochs 100
    """
    from scalelab.flops import describe_model

    if (examples is None) != (epochs is None):
        fail("give both --examples and --epochs to compute C, or neither")
    info = describe_model(name, classes, resolution, examples, epochs)
    if as_json:
        print_json(info)
        return
    typer.echo(
        f"model       {info['model']}  ({info['classes']} classes, "
        f"{info['resolution']}x{info['resolution']}x3 input)"
    )
    typer.echo(f"parameters  {info['params']:,} ({info['params'] / 1e6:.2f}M)")
    typer.echo(
        f"FLOP(f)     {info['flops']:,} ({info['flops'] / 1e6:.2f}M) per example, "
        "1 multiply-accumulate = 1 FLOP"
    )
    if "compute" in info:
        typer.echo(
            f"compute C   {info['compute']:.4g} FLOPs = {info['pflops']:.4g} PFLOPs "
            f"(FLOP(f)·3·N·T with N={info['examples']:,}, T={info['epochs']:g})"
        )


# ── datasets (issue 4) ───────────────────────────────────────────────────────────────────

prepare_app = typer.Typer(
    help=(
        "Convert downloaded datasets into prepared folders (uint8 memmap, FFCV .beton when "
        "ffcv is installed, meta.json). Resumable; bad images are skipped and reported.\n\n"
        "Example: scalelab prepare cifar10 ~/downloads/cifar-10-batches-py"
    ),
    no_args_is_help=True,
)
app.add_typer(prepare_app, name="prepare")

SourceArg = Annotated[
    Path, typer.Argument(help="The downloaded dataset, in its official layout.", show_default=False)
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Decoding processes (default: all cores).", show_default=False)
]
DataRootOption = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        envvar="SCALELAB_DATA",
        help="Where prepared targets live (default $SCALELAB_DATA or ./data).",
        show_default=False,
    ),
]


def _print_progress(stage: str, done: int, total: int) -> None:
    """Progress on stderr, one updating line per split, so --json output stays clean."""
    percent = 100 * done / max(total, 1)
    typer.echo(f"\r{stage}: {done:,}/{total:,} images ({percent:.0f}%)", err=True, nl=False)
    if done >= total:
        typer.echo("", err=True)


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
    else:
        typer.echo(report.summary())
        for path in report.skipped_files[:5]:
            typer.echo(f"  skipped: {path}")


@prepare_app.command("imagenet21k")
@user_errors
def prepare_imagenet21k_command(
    src: SourceArg,
    out: Annotated[Path, typer.Option("--out", help="Folder to write.", show_default=False)],
    resolution: Annotated[int, typer.Option(help="Side of the stored square images.")] = 64,
    heldout_fraction: Annotated[
        float, typer.Option(help="Class-stratified share held out for upstream error.")
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the held-out draw.")] = 0,
    workers: WorkersOption = None,
    as_json: JsonFlag = False,
) -> None:
    """ImageNet-21k (a folder of class folders of JPEGs, e.g. Ridnik et al.'s processed one).

    Shorter side resized to RESOLUTION (PIL bicubic, antialiased), centre crop; written as
    train and held-out splits plus classes.json; re-run the same command to resume.

    Example: scalelab prepare imagenet21k ~/imagenet21k_resized/train --out data/in21k-64
    """
    from scalelab.data.prepare import prepare_imagenet21k

    report = prepare_imagenet21k(
        src,
        out,
        resolution=resolution,
        heldout_fraction=heldout_fraction,
        seed=seed,
        workers=workers,
        progress=_print_progress,
    )
    _print_report(report, as_json)


@prepare_app.command("imagenet1k")
@user_errors
def prepare_imagenet1k_command(
    src: SourceArg,
    data_root: DataRootOption = None,
    resolution: Annotated[int, typer.Option(help="Side of the stored square images.")] = 64,
    workers: WorkersOption = None,
    as_json: JsonFlag = False,
) -> None:
    """ImageNet-1k from train/<wnid>/ and val/<wnid>/ class folders (val is the test split).

    Example: scalelab prepare imagenet1k ~/imagenet --data-root data
    """
    from scalelab.data.prepare import prepare_target

    report = prepare_target(
        "imagenet1k",
        src,
        data_root,
        resolution=resolution,
        workers=workers,
        progress=_print_progress,
    )
    _print_report(report, as_json)


def _native_prepare_command(target: str, layout: str, example: str) -> None:
    """Register `scalelab prepare TARGET SRC` for a set kept at its native resolution."""

    def command(
        src: SourceArg,
        data_root: DataRootOption = None,
        workers: WorkersOption = None,
        as_json: JsonFlag = False,
    ) -> None:
        from scalelab.data.prepare import prepare_target

        report = prepare_target(target, src, data_root, workers=workers, progress=_print_progress)
        _print_report(report, as_json)

    command.__doc__ = f"{layout}\n\nExample: scalelab prepare {target} {example}"
    prepare_app.command(target)(user_errors(command))


_native_prepare_command(
    "cifar10", "CIFAR-10 python batches (data_batch_1..5, test_batch).", "~/cifar-10-batches-py"
)
_native_prepare_command(
    "cifar100", "CIFAR-100 python files (train, test; fine labels).", "~/cifar-100-python"
)
_native_prepare_command(
    "stl10", "STL10 binaries (train_X.bin, train_y.bin, test_X.bin, test_y.bin).", "~/stl10_binary"
)
_native_prepare_command(
    "tinyimagenet",
    "TinyImageNet (wnids.txt, train/<wnid>/images/, val/images + val_annotations.txt).",
    "~/tiny-imagenet-200",
)

# ── probes (issue 5) ─────────────────────────────────────────────────────────────────────


@app.command()
@user_errors
def probe(
    job: Annotated[int, typer.Option("--job", help="Job id (see `scalelab status`).")],
    target: Annotated[str, typer.Option("--target", help="Downstream target, e.g. cifar100.")],
    method: Annotated[
        str | None, typer.Option(help="ridge, lion or logreg (default: the job's).")
    ] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", help="Only the checkpoint at this T.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Probe a job's stored checkpoints again, e.g. on a new target, without retraining.

    Example: scalelab probe --job 3 --target cifar10 --method logreg
    """
    from scalelab.reprobe import reprobe

    results = reprobe(db, job, target, method=method, epochs=epochs, device=device)
    if as_json:
        print_json([vars(r) for r in results])
        return
    for r in results:
        typer.echo(
            f"job {r.job_id} T={r.epochs:g} {r.target} ({r.method}): error {r.error:.4f} "
            f"in {r.wall_seconds:.1f}s"
        )


# ── scaling-law fits (issue 6) ───────────────────────────────────────────────────────────

TargetOption = Annotated[
    str, typer.Option("--target", help="Target: a probe target like cifar10, or 'upstream'.")
]
MethodOption = Annotated[
    str | None,
    typer.Option("--method", help="Probe method, when the target has points from several."),
]


@app.command()
@user_errors
def fit(
    target: TargetOption,
    epochs: Annotated[
        float | None,
        typer.Option("--epochs", help="T for P*(C), N*(C) and E(P, N) (default: smallest T)."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples over runs.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    method: MethodOption = None,
    loss: Annotated[
        str,
        typer.Option(
            "--loss",
            help="Residuals of E(C): log (of E, the default) or linear (on E, the paper's).",
        ),
    ] = "log",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the fit as JSON to this file.")
    ] = None,
    card: Annotated[
        bool, typer.Option("--card", help="Print the fit card (Markdown) instead of the table.")
    ] = False,
    sweep: SweepOption = None,
    pool_sweeps: PoolOption = False,
    db: DbOption = None,
) -> None:
    """Fit the frontier, E(C) = a(b+C)^-alpha + E_inf, E(P), E(N), P*(C), N*(C) and
    E(P, N) = E + A/P^alpha + B/N^beta, with 95% bootstrap intervals; store the fit.

    Diverged runs and C = 0 baselines are left out; seeds are averaged; where hyper-parameters
    were swept, each (model, N, T) keeps the setting with the lowest validation error of the
    target's probe (rows of its training split held out to choose its penalty), else the
    lowest upstream held-out error.
    A part the data cannot determine is null, with the reason in the notes. `--loss linear`
    fits E(C) by plain least squares on E, as the paper's curve_fit; when the other loss moves
    alpha by more than half its interval, a robustness line says so.

    --card prints how the fit was made (FLOP convention, loss, optimiser and starts, points
    dropped, selection and averaging, bootstrap) as Markdown for a paper's appendix.

    Example: scalelab fit --target cifar10 --json fit-cifar10.json
    """
    from scalelab.analysis import fit_and_store, render_card, render_fit

    result = fit_and_store(
        db,
        target,
        epochs=epochs,
        bootstrap=bootstrap,
        seed=seed,
        method=method,
        loss=loss,
        json_path=json_path,
        sweeps=sweep,
        pool_sweeps=pool_sweeps,
    )
    typer.echo(render_card(result) if card else render_fit(result))


@app.command()
@user_errors
def plan(
    target: TargetOption,
    budget: Annotated[float, typer.Option("--budget", help="Compute C in FLOP, e.g. 1e18.")],
    classes: ClassesOption = 11230,
    resolution: ResolutionOption = 64,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Resamples, if a fit must be made first.")
    ] = 1000,
    epochs: Annotated[
        float | None,
        typer.Option("--epochs", help="Train for this T (default: the T of the allocation)."),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit/--no-refit", help="Refit when the stored fit no longer matches the runs."
        ),
    ] = True,
    sweep: SweepOption = None,
    pool_sweeps: PoolOption = False,
    as_json: JsonFlag = False,
    db: DbOption = None,
) -> None:
    """Forecast a budget: best error E(C) with its interval, P*(C), N*(C), and the paper's
    model nearest P*(C) trained for the allocation's T on N = C / (3·FLOP(f)·T). Uses the
    latest stored fit of the target if it still matches the runs (else refits and stores).

    Example: scalelab plan --target cifar10 --budget 1e18
    """
    from scalelab.analysis import plan_from_db, render_plan

    result = plan_from_db(
        db,
        target,
        budget,
        num_classes=classes,
        resolution=resolution,
        bootstrap=bootstrap,
        epochs=epochs,
        refit=refit,
        sweeps=sweep,
        pool_sweeps=pool_sweeps,
    )
    if as_json:
        print_json(result)
    else:
        typer.echo(render_plan(result))


@app.command()
@user_errors
def backtest(
    target: TargetOption,
    holdout_above: Annotated[
        float | None,
        typer.Option("--holdout-above", help="Hold out the points with compute above C FLOP."),
    ] = None,
    holdout_top: Annotated[
        int | None,
        typer.Option("--holdout-top", help="Hold out the K largest budgets (equal compute)."),
    ] = None,
    epochs: Annotated[
        float | None,
        typer.Option("--epochs", help="T for Approaches 1-3 (default: smallest T)."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples of the fitted runs.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    method: MethodOption = None,
    figure: Annotated[
        Path | None,
        typer.Option("--figure", help="Also draw the backtest to this file (.png, .pdf, .svg)."),
    ] = None,
    as_json: JsonFlag = False,
    db: DbOption = None,
) -> None:
    """Score every law on runs it did not see: hold out the runs above a compute cut, fit the
    compute law, the bottleneck laws and Approaches 1, 2 and 3 on the rest, and report each
    law's relative and RMS log error on the held-out runs, with bootstrap intervals, and the
    decades of compute it extrapolates. Nothing is stored.

    Example: scalelab backtest --target cifar10 --holdout-top 1 --figure backtest.png
    """
    from scalelab.analysis.backtest import backtest_from_db
    from scalelab.analysis.table import render_backtest

    result = backtest_from_db(
        db,
        target,
        figure=figure,
        holdout_above=holdout_above,
        holdout_top=holdout_top,
        epochs=epochs,
        method=method,
        bootstrap=bootstrap,
        seed=seed,
    )
    if as_json:
        print_json(result)
        return
    typer.echo(render_backtest(result))
    if figure is not None:
        typer.echo(f"wrote {result['figure']}")


# ── figures (issue 7) ────────────────────────────────────────────────────────────────────


@app.command()
@user_errors
def plot(
    figure: Annotated[
        str, typer.Argument(help="fig1, fig6, fig7, fig8, batch-size, or all.", show_default=False)
    ],
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="Target to draw (e.g. cifar10, upstream).", show_default=False
        ),
    ] = None,
    targets: Annotated[
        str, typer.Option("--targets", help="fig6: the targets side by side, comma-separated.")
    ] = "cifar10,imagenet1k",
    out: Annotated[Path, typer.Option("--out", help="Folder for the figure files.")] = Path(
        "plots"
    ),
    formats: Annotated[
        str, typer.Option("--format", help="File formats, comma-separated (png, pdf, svg).")
    ] = "png",
    method: Annotated[
        str | None,
        typer.Option(
            "--method", help="Probe method, where a target has several.", show_default=False
        ),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            help="Bootstrap resamples for the intervals (default: fit's).",
            show_default=False,
        ),
    ] = None,
    sweep: SweepOption = None,
    pool_sweeps: PoolOption = False,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Draw the paper's figures from the results database, with the laws fitted afresh.

    fig1: error against compute, with the compute law and its bootstrap band.
    fig6: fig1 for two targets side by side (--targets).
    fig7: error against P and against N, with the bottleneck laws.
    fig8: compute-optimal P*(C) and N*(C), with their power laws.
    batch-size: error against pretraining batch size, one line per T.
    all: every figure the data supports; the others are listed with the reason.
    Files are written as OUT/FIGURE_TARGET.FORMAT.

    Example: scalelab plot fig1 --target synthetic-cifar10 --format png,pdf
    """
    from scalelab.figures.render import plot_from_db

    report = plot_from_db(
        figure,
        db=db,
        target=target,
        targets=[t for t in targets.split(",") if t],
        out_dir=out,
        formats=[f for f in formats.split(",") if f],
        method=method,
        bootstrap=bootstrap,
        sweeps=sweep,
        pool_sweeps=pool_sweeps,
    )
    if as_json:
        print_json(report.as_dict())
        return
    for path in report.written:
        typer.echo(f"wrote {path}")
    for line in report.missing_fits:
        typer.echo(f"fit missing: {line}")
    for line in report.skipped:
        typer.echo(f"skipped {line}")


# ── scale out (issue 9) ──────────────────────────────────────────────────────────────────


@db_app.command("copy")
@user_errors
def db_copy(
    source: Annotated[str, typer.Option("--from", help="Source database (path or URL).")],
    target: Annotated[str, typer.Option("--to", help="New, empty target database.")],
    as_json: JsonFlag = False,
) -> None:
    """Copy a whole study between backends (SQLite ⇄ PostgreSQL), ids and all.

    Example: scalelab db copy --from runs.db --to postgresql+psycopg://me@dbhost/study
    """
    from scalelab.store.copy import copy_database

    report = copy_database(source, target)
    if as_json:
        print_json(report.rows)
    else:
        typer.echo(
            "copied " + ", ".join(f"{n} {table}" for table, n in report.rows.items() if n)
            if any(report.rows.values())
            else "copied an empty database"
        )


@app.command()
@user_errors
def launch(
    workers: Annotated[int, typer.Option(help="Number of worker processes.")] = 2,
    executor: Annotated[str, typer.Option(help="local or slurm.")] = "local",
    partition: Annotated[str | None, typer.Option(help="SLURM partition.")] = None,
    gpus_per_worker: Annotated[int, typer.Option(help="GPUs per SLURM worker.")] = 1,
    cpus_per_worker: Annotated[int | None, typer.Option(help="CPUs per SLURM worker.")] = None,
    time_min: Annotated[int, typer.Option(help="SLURM time limit per worker (minutes).")] = 60,
    array_parallelism: Annotated[
        int | None, typer.Option(help="At most this many array tasks at once.")
    ] = None,
    max_requeues: Annotated[
        int,
        typer.Option(help="Requeue a preempted or timed-out SLURM task at most this often."),
    ] = 3,
    device: Annotated[str, typer.Option(help="Device for each worker.")] = "auto",
    until_empty: Annotated[
        bool, typer.Option("--until-empty/--poll", help="Exit when the queue is empty.")
    ] = True,
    workdir: Annotated[Path, typer.Option(help="Checkpoints (shared by all workers).")] = Path(
        "work"
    ),
    db: DbOption = None,
) -> None:
    """Start K workers on the shared queue: local processes, or one SLURM job array.

    Example: scalelab launch --workers 32 --executor slurm --partition gpu --time-min 240
    --db postgresql+psycopg://me@dbhost/study
    """
    from scalelab.launch import LaunchOptions
    from scalelab.launch import launch as start

    result = start(
        db,
        LaunchOptions(
            workers=workers,
            executor=executor,
            device=device,
            until_empty=until_empty,
            workdir=workdir,
            partition=partition,
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
            time_min=time_min,
            array_parallelism=array_parallelism,
            max_requeues=max_requeues,
        ),
    )
    if executor == "slurm":
        typer.echo(f"submitted SLURM array of {workers} workers: {', '.join(map(str, result))}")
    elif any(result):
        fail(f"{sum(1 for code in result if code)} of {workers} workers exited with an error")
    else:
        typer.echo(f"{workers} workers finished")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
