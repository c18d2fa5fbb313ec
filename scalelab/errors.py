"""Typed errors. The CLI turns each into one line on stderr and exit code 2.

Every message names the problem and the fix, e.g.
``GridError("grid.toml:3:7: unknown key 'epoch'; did you mean 'epochs'?")``.
"""


class ScalelabError(Exception):
    """Base class: an error a user can fix; printed as one line, never a traceback."""

    exit_code = 2


class GridError(ScalelabError):
    """A grid file is malformed or names something that does not exist."""


class DatabaseError(ScalelabError):
    """The results database cannot be opened, is not a scalelab database, or has another schema."""


class LeaseLost(ScalelabError):
    """A worker's lease on a job was taken over; it must stop writing results for that job."""


class ModelNameError(ScalelabError):
    """A model name does not parse (e.g. 'B-12/Wi-' or 'X-3')."""


class DataError(ScalelabError):
    """A dataset is missing, malformed, or too small for what was asked."""


class ProbeError(ScalelabError):
    """A linear probe cannot be run (unknown target, NaN features, one class, ...)."""


class FitError(ScalelabError):
    """A scaling-law fit cannot be computed from the data given."""


class PlotError(ScalelabError):
    """A figure cannot be drawn from the data given."""


class ImportFormatError(ScalelabError):
    """A results file for `scalelab import` has missing columns or bad values."""


class DeviceError(ScalelabError):
    """A requested device does not exist on this machine (e.g. 'cuda:1' with one GPU)."""


class SweepError(ScalelabError):
    """A sweep asked for does not exist, or sweeps with different recipes would be pooled."""
