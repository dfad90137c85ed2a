"""Mode "views": phase folding and the phase-folded global / local (+ odd / even) views of each TCE.

Times and phases are days (phase in [-period/2, period/2), 0 at mid-transit); flux is relative flux minus one.
Each TCE's views are built with the other TCEs' transits removed: ``global_view`` (``views.global_bins``,),
``local_view`` and, with ``views.odd_even``, ``local_view_odd`` / ``local_view_even`` (``views.local_bins``,).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transforms.recipes.tce.binning import bin_median
from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.detrend import Detrended
from transforms.recipes.tce.ephemeris import in_intervals, transit_intervals
from transforms.recipes.tce.schema import (
    GLOBAL_VIEW,
    KIND_VIEW,
    LOCAL_VIEW,
    LOCAL_VIEW_EVEN,
    LOCAL_VIEW_ODD,
    NO_TRANSIT_OBSERVED,
    Drop,
    Tce,
    TceExample,
    tce_row,
    unresolved_transit,
)
from transforms.recipes.tce.sources import curve_sources


def phase_fold(time: np.ndarray, period: float, epoch: float) -> np.ndarray:
    """Phase (days) in [-period/2, period/2), 0 at the transit mid-times."""
    return np.mod(time - epoch + 0.5 * period, period) - 0.5 * period


def tce_views(curve: Detrended, tce: Tce, others: Sequence[Tce], cfg: TceConfig) -> tuple[dict, dict]:
    """Phase-folded views of one TCE with the other TCEs' transits removed.

    Returns ``(arrays, info)``: ``global_view`` (global_bins,) over the whole period, ``local_view``
    (local_bins,) over +- local_half_width_durations x duration, and with ``views.odd_even`` the local views of
    the odd and even transits (zeros when a parity has no data); all relative flux minus one. ``info`` counts
    the transits with in-transit data (``n_transits``, ``n_odd``, ``n_even``).
    """
    views = cfg.views
    span = (curve.time[0], curve.time[-1]) if len(curve.time) else (0.0, 0.0)
    keep = ~in_intervals(curve.time, transit_intervals(others, *span, cfg.mask_width_factor))
    time, delta = curve.time[keep], curve.delta[keep]
    period, duration = tce.period_days, tce.duration_days
    phase = phase_fold(time, period, tce.epoch)
    number = np.round((time - tce.epoch) / period).astype(np.int64)
    in_transit = np.abs(phase) <= 0.5 * duration
    observed = np.unique(number[in_transit])
    half_local = min(views.local_half_width_durations * duration, 0.5 * period)
    local_width = max(2 * half_local / views.local_bins, curve.cadence)
    global_view, _ = bin_median(phase, delta, -0.5 * period, 0.5 * period, views.global_bins, curve.cadence)
    local_view, _ = bin_median(phase, delta, -half_local, half_local, views.local_bins, local_width)
    arrays = {GLOBAL_VIEW: global_view, LOCAL_VIEW: local_view}
    info = {
        "n_transits": int(len(observed)),
        "n_odd": int(np.sum(observed % 2 == 1)),
        "n_even": int(np.sum(observed % 2 == 0)),
    }
    if views.odd_even:
        for name, parity in ((LOCAL_VIEW_ODD, 1), (LOCAL_VIEW_EVEN, 0)):
            sel = (number % 2) == parity
            has_data = bool(np.any(sel & in_transit))
            arrays[name] = (
                bin_median(phase[sel], delta[sel], -half_local, half_local, views.local_bins, bin_width=local_width)[0]
                if has_data
                else np.zeros(views.local_bins)
            )
    return arrays, info


def view_examples(curve: Detrended, tces: Sequence[Tce], cfg: TceConfig) -> tuple[list[TceExample], list[Drop]]:
    """Mode "views": one example per TCE (uid = tce_uid) with at least one transit with in-transit data."""
    examples: list[TceExample] = []
    drops: list[Drop] = []
    sources = curve_sources(curve)
    for tce in tces:
        if (unresolved := unresolved_transit(tce, curve.cadence)) is not None:
            drops.append(unresolved)  # still masked in the others' windows: its transits are real
            continue
        others = [t for t in tces if t.tce_uid != tce.tce_uid]
        arrays, info = tce_views(curve, tce, others, cfg)
        if info["n_transits"] == 0:
            drops.append(
                Drop(
                    tce.tce_uid,
                    NO_TRANSIT_OBSERVED,
                    "no cadence within a transit of this TCE (outside the data, in gaps, or masked)",
                )
            )
            continue
        row = {**tce_row(tce, cfg), "kind": KIND_VIEW, "epoch": tce.epoch, **info}
        examples.append(TceExample(tce.tce_uid, tce.target_id, tce.tce_uid, tce.label, arrays, row, sources))
    return examples, drops
