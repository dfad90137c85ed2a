"""One target (star) of the light-curve (TCE) recipe: its examples and drops, plus the recipe's float features and
data-table columns.

The modules of this package use no Beam and no TensorFlow: numpy/scipy plus astropy for FITS. Units and
conventions:

* times are days in the light curve's own system (Kepler BKJD = BJD - 2454833, TESS BTJD = BJD - 2457000);
* TCE periods are days and durations hours, as in the DR25 / SPOC TCE tables (``Tce.duration_days`` converts);
* flux leaves ``process_target`` as **relative flux minus one** ("delta"): dimensionless, 0 out of transit and
  ``-depth`` at the bottom of a transit (a 1000 ppm transit reaches -1e-3); each example's arrays are 1-D, of
  the lengths given by ``feature_lengths``.

Per target (``process_target``, the one call the Beam build stage makes per star)::

    FITS bytes -> read_light_curve (fits_io.py): drop flagged / NaN cadences, divide by the file's median
    -> detrend (detrend.py): continuous segments (file boundaries, gaps > gap_days), robust cubic spline per
       segment fitted with EVERY TCE's transits masked, delta = flux / trend - 1
    -> mode "transits" (windows.py): one window per observed transit of each TCE (window_durations x duration
       wide, binned to n_bins), plus as many out-of-transit windows per TCE, placed by sha256(salt:tce_uid)
    -> mode "views" (views.py): global (phase-folded over the period) and local (+ odd / even) views per TCE,
       with the other TCEs' transits removed

Target-level masks (``windows.transit_windows``): a window of a negative-disposition TCE may not overlap a transit
of a positive TCE of the same star; an out-of-transit window may not overlap any TCE's transit. Every input that
does not become an example comes back as a ``Drop`` with a stable reason, so nothing is lost silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.detrend import detrend
from transforms.recipes.tce.schema import (
    DUPLICATE_TCE,
    FLUX_WINDOW,
    GLOBAL_VIEW,
    LIGHT_CURVE_WITHOUT_TCE,
    LOCAL_VIEW,
    LOCAL_VIEW_EVEN,
    LOCAL_VIEW_ODD,
    TCE_WITHOUT_LIGHT_CURVE,
    TRANSIT_TABLE_COLUMNS,
    VIEW_TABLE_COLUMNS,
    Drop,
    LightCurve,
    Tce,
    TceExample,
    table_column,
)
from transforms.recipes.tce.views import view_examples
from transforms.recipes.tce.windows import transit_windows


def data_table_columns(cfg: TceConfig, csv_header: Sequence[str]) -> list[str]:
    """The recipe's data-table columns: the mode's own, then the TCE table's (minus target id and label)."""
    own = list(TRANSIT_TABLE_COLUMNS if cfg.mode == "transits" else VIEW_TABLE_COLUMNS)
    skip = {cfg.columns.target_id, cfg.columns.label}
    return own + [table_column(c) for c in csv_header if c not in skip]


def feature_lengths(cfg: TceConfig) -> dict[str, int]:
    """The float features of the mode and their lengths (values per example)."""
    if cfg.mode == "transits":
        return {FLUX_WINDOW: cfg.n_bins}
    views = {GLOBAL_VIEW: cfg.views.global_bins, LOCAL_VIEW: cfg.views.local_bins}
    if cfg.views.odd_even:
        views.update({LOCAL_VIEW_ODD: cfg.views.local_bins, LOCAL_VIEW_EVEN: cfg.views.local_bins})
    return views


def process_target(
    target_id: str,
    curves: Sequence[LightCurve],
    tces: Sequence[Tce],
    cfg: TceConfig,
    no_light_curve: str | None = None,
) -> tuple[list[TceExample], list[Drop]]:
    """All examples of one star from its cleaned light curves and its validated TCEs, plus every drop.

    Light curves without a TCE and TCEs without a light curve are dropped with their reason (``no_light_curve``:
    the detail of the latter, e.g. ``diagnostics.no_light_curve_detail``); of rows with the same TCE uid one is
    kept (the first in sorted order) and the others are dropped as duplicate_tce. The result does not depend on
    the order of ``curves`` and ``tces``.
    """
    curves = sorted(curves, key=lambda c: (float(c.time[0]), c.path))
    unique: dict[str, Tce] = {}
    drops: list[Drop] = []
    for tce in sorted(tces, key=lambda t: (t.tce_uid, sorted(t.row.items()))):
        if tce.tce_uid in unique:
            drops.append(Drop(tce.tce_uid, DUPLICATE_TCE, "the TCE table lists this target/TCE id more than once"))
        else:
            unique[tce.tce_uid] = tce
    tces = list(unique.values())
    if not curves:
        detail = no_light_curve or f"no readable light curve for target {target_id}"
        return [], drops + [Drop(t.tce_uid, TCE_WITHOUT_LIGHT_CURVE, detail) for t in tces]
    if not tces:
        return [], drops + [
            Drop(c.path, LIGHT_CURVE_WITHOUT_TCE, f"target {target_id} has no (valid) TCE in the table") for c in curves
        ]
    if any(t.epoch_is_bjd for t in tces):
        ref = curves[0].bjd_ref
        tces = [replace(t, epoch=t.epoch - ref, epoch_is_bjd=False) for t in tces]
    curve = detrend(curves, tces, cfg)
    spans = np.array([[c.time[0], c.time[-1]] for c in curves], dtype=np.float64)
    if cfg.mode == "transits":
        examples, more = transit_windows(curve, tces, cfg, spans)
    else:
        examples, more = view_examples(curve, tces, cfg)
    return examples, drops + more
