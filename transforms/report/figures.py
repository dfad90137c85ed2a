"""Report figures: a titled PNG with a caption, drawn on matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import io
from dataclasses import dataclass

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
