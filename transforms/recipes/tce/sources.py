"""The provenance columns of a light-curve example: the FITS files and table rows it was cut from.

``Detrended`` keeps, for each cadence of a star's stitched light curve, its file (``file_index`` into ``files``)
and its row in that file's table (``rows``, 0-based). An example lists each file its cadences came from, in time
order: ``source_path`` and ``source_sha256`` (joined by ``;``) and ``source_rows`` (``path:start-stop``, the
smallest range of table rows, stop excluded, that holds every cadence used: ``table[start:stop]``; rows in it
that were flagged or not finite were not used). A transit or out-of-transit window uses the cadences with
``lo <= time <= hi`` (those ``binning.bin_rows`` bins); a view uses the whole light curve.
"""

from __future__ import annotations

import numpy as np

from transforms.provenance import SEPARATOR, SOURCE_PATH, SOURCE_ROWS, SOURCE_SHA256, format_rows
from transforms.recipes.tce.detrend import Detrended


def _columns(curve: Detrended, files: np.ndarray, rows: np.ndarray) -> dict[str, str]:
    if curve.file_index is None or curve.rows is None:
        return {}
    present, first = np.unique(files, return_index=True)
    spans = []
    for index in present[np.argsort(first, kind="stable")].tolist():
        used = rows[files == index]
        spans.append((curve.files[index], int(used.min()), int(used.max()) + 1))
    return {
        SOURCE_PATH: SEPARATOR.join(source for (source, _), _, _ in spans),
        SOURCE_SHA256: SEPARATOR.join(sha256 for (_, sha256), _, _ in spans),
        SOURCE_ROWS: format_rows((source, start, stop) for (source, _), start, stop in spans),
    }


def window_sources(curve: Detrended, lo: float, hi: float) -> dict[str, str]:
    """The provenance columns of a window over [lo, hi] (days)."""
    if curve.file_index is None or curve.rows is None:
        return {}
    start = int(np.searchsorted(curve.time, lo, side="left"))
    stop = int(np.searchsorted(curve.time, hi, side="right"))
    return _columns(curve, curve.file_index[start:stop], curve.rows[start:stop])


def curve_sources(curve: Detrended) -> dict[str, str]:
    """The provenance columns of an example made from the whole light curve (a view)."""
    if curve.file_index is None or curve.rows is None:
        return {}
    return _columns(curve, curve.file_index, curve.rows)
