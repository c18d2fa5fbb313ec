"""Writing figures to files: one file per requested format, named after the figure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from scalelab.errors import PlotError


def save_figure(
    fig: Figure, out_dir: str | Path, name: str, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Write `fig` as out_dir/name.FORMAT for each format (png, pdf, svg, ...); return the paths.

    The name is made safe for a file system ('fig1 cifar10/x' -> 'fig1_cifar10_x').
    """
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in formats if f not in supported]
    if unknown or not formats:
        given = f"unknown figure format '{unknown[0]}'" if unknown else "no figure format given"
        raise PlotError(f"{given}; choose from {', '.join(sorted(supported))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        fig.savefig(path, format=fmt)
        paths.append(path)
    return paths
