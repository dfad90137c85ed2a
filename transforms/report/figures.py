"""Report figures: a titled PNG with a caption, drawn on matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure


@dataclass(frozen=True)
class Figure:
    """One figure of the report: ``name`` (file stem, unique within the report), section heading, title, caption
    and the PNG bytes."""

    name: str
    section: str
    title: str
    caption: str
    png: bytes


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 10.0, height: float = 3.6, **kwargs):
    """A matplotlib figure and its axes (array when more than one), not attached to any GUI backend."""
    figure = MplFigure(figsize=(width, height * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=True, **kwargs)
    return figure, axes


def to_png(figure: MplFigure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def make(name: str, section: str, title: str, caption: str, figure: MplFigure) -> Figure:
    """A report ``Figure`` from a drawn matplotlib figure."""
    return Figure(name, section, title, caption, to_png(figure))


SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def split_histograms(ax, per_split: dict[str, np.ndarray], bins) -> None:
    """One step histogram (density) per split on ``ax``, each labelled with its example count."""
    for split, values in per_split.items():
        if not values.size:
            continue
        ax.hist(
            values,
            bins=bins,
            density=True,
            histtype="step",
            lw=1.2,
            color=SPLIT_COLORS.get(split),
            label=f"{split} ({values.size})",
        )
