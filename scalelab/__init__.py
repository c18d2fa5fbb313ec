"""scalelab: scaling laws for MLPs on vision (after Bachmann et al., NeurIPS 2023)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scalelab")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"


def load_runs(db: str | None = None, sweeps: list[str] | None = None):
    """All evaluated checkpoints as a DataFrame, one row per (checkpoint, target).

    ``db`` is a file path or an SQLAlchemy URL (default: $SCALELAB_DB or ./runs.db);
    ``sweeps`` keeps only the runs of the sweeps with these names.
    """
    from scalelab.store.results import load_runs as _load_runs

    return _load_runs(db, sweeps)


__all__ = ["__version__", "load_runs"]
