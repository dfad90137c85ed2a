"""Mode "transits": the transit / out-of-transit window examples of one target.

Times are days, flux is relative flux minus one (``Detrended.delta``). A window is ``cfg.window_durations`` x
the TCE's duration wide, centred on a predicted mid-time, and binned by median to ``flux_window``
(``cfg.n_bins``,) (``binning.bin_rows``: all windows of a TCE in one pass). Target-level masks: a negative TCE's
window may not overlap a positive TCE's transit; an out-of-transit window (placed by ``oot_rng``,
sha256(salt:tce_uid)) may not overlap any TCE's transit, including transits predicted just past the ends of the
data that the window reaches. Rejected transits and empty out-of-transit slots come back as ``Drop`` s with
their reason.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

import numpy as np

from transforms.recipes.tce.binning import bin_rows, coverage
from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.detrend import Detrended
from transforms.recipes.tce.ephemeris import count_overlaps_many, transit_intervals, transit_times
from transforms.recipes.tce.schema import (
    FLUX_WINDOW,
    KIND_OOT,
    KIND_TRANSIT,
    NO_ROOM_FOR_OOT,
    NO_TRANSIT_OBSERVED,
    OVERLAPS_POSITIVE,
    TRANSIT_IN_GAP,
    WINDOW_LOW_COVERAGE,
    Drop,
    Tce,
    TceExample,
    tce_row,
    unresolved_transit,
)
from transforms.recipes.tce.sources import window_sources

OOT_DRAWS_PER_WINDOW = 200  # draws per out-of-transit slot before it is given up as no_room_for_out_of_transit

# ---- examples: mode "transits" -----------------------------------------------------------------------------------


def _fmt_time(t: float) -> str:
    return f"{float(t):.4f}"


def _windows(curve: Detrended, mids: np.ndarray, width: float, cfg: TceConfig) -> np.ndarray:
    """(m, n_bins) binned windows of ``width`` days centred on ``mids`` (m,)."""
    lo, hi = mids - 0.5 * width, mids + 0.5 * width
    return bin_rows(curve.time, curve.delta, lo, hi, cfg.n_bins, bin_width=curve.cadence)[0]


def oot_rng(tce_uid: str, salt: str) -> np.random.Generator:
    """The generator that places a TCE's out-of-transit windows: seeded by sha256(salt:tce_uid)."""
    seed = int.from_bytes(hashlib.sha256(f"{salt}:{tce_uid}".encode()).digest()[:8], "big")
    return np.random.default_rng(seed)


def observed_transits(tce: Tce, spans: np.ndarray) -> np.ndarray:
    """Sorted mid-times (days) of ``tce``'s transits that fall within a light curve's (m, 2) [first, last] span.

    Transits between two files (e.g. TESS sectors years apart) were not observed; transits inside a file's gaps
    were, and are rejected later for their coverage.
    """
    mids = [transit_times(tce.period_days, tce.epoch, lo, hi) for lo, hi in spans]
    return np.unique(np.concatenate(mids)) if mids else np.zeros(0)


def transit_windows(
    curve: Detrended, tces: Sequence[Tce], cfg: TceConfig, spans: np.ndarray
) -> tuple[list[TceExample], list[Drop]]:
    """Mode "transits": window examples of every TCE of one target, with the target-level masks.

    ``spans``: (m, 2) [first, last] time (days) of each light curve of the target. A transit whose mid-time lies
    in a span is "observed": kept, or dropped with its reason (transit_in_gap, window_low_coverage,
    overlaps_positive_transit); a TCE with none is dropped as no_transit_observed. Each window is
    ``cfg.window_durations`` x duration wide, centred on the predicted mid-time, binned to ``cfg.n_bins`` values
    of relative flux minus one: ``flux_window`` (n_bins,). A negative TCE's window may not overlap a positive
    TCE's transit; a positive TCE's window may, and ``n_overlapping_transits`` in its row counts the other TCEs'
    transits (1 x duration) inside it. Out-of-transit windows avoid every transit that reaches into
    [first - w/2, last + w/2] for the widest window w, so also those predicted just past the data.
    """
    examples: list[TceExample] = []
    drops: list[Drop] = []
    t_lo, t_hi = float(spans[:, 0].min()), float(spans[:, 1].max())
    reach = 0.5 * cfg.window_durations * max(t.duration_days for t in tces) if tces else 0.0
    all_transits = transit_intervals(tces, t_lo - reach, t_hi + reach, cfg.mask_width_factor)
    positive_transits = transit_intervals([t for t in tces if t.label == 1], t_lo, t_hi, cfg.mask_width_factor)
    for tce in tces:
        if (unresolved := unresolved_transit(tce, curve.cadence)) is not None:
            drops.append(unresolved)  # still masked in the others' windows: its transits are real
            continue
        width = cfg.window_durations * tce.duration_days
        half = 0.5 * tce.duration_days
        mids = observed_transits(tce, spans)
        if len(mids) == 0:
            drops.append(Drop(tce.tce_uid, NO_TRANSIT_OBSERVED, "no predicted transit within a light curve's span"))
            continue
        others = transit_intervals([t for t in tces if t.tce_uid != tce.tce_uid], t_lo, t_hi, 1.0)
        starts, ends = mids - 0.5 * width, mids + 0.5 * width
        in_cov = coverage(curve.time, mids - half, mids + half, curve.cadence)
        win_cov = coverage(curve.time, starts, ends, curve.cadence)
        in_gap = in_cov < cfg.min_transit_coverage
        low = ~in_gap & (win_cov < cfg.min_window_coverage)
        on_positive = ~in_gap & ~low & (tce.label == 0) & (count_overlaps_many(starts, ends, positive_transits) > 0)
        keep = ~(in_gap | low | on_positive)
        for i in np.flatnonzero(~keep):
            uid = f"{tce.tce_uid}_t_{_fmt_time(mids[i])}"
            if in_gap[i]:
                detail = f"{in_cov[i]:.0%} of the in-transit cadences present (< {cfg.min_transit_coverage:.0%})"
                drops.append(Drop(uid, TRANSIT_IN_GAP, detail))
            elif low[i]:
                detail = f"{win_cov[i]:.0%} of the window's cadences present (< {cfg.min_window_coverage:.0%})"
                drops.append(Drop(uid, WINDOW_LOW_COVERAGE, detail))
            else:
                drops.append(Drop(uid, OVERLAPS_POSITIVE, "the window of a negative TCE overlaps a positive transit"))
        kept = np.flatnonzero(keep)
        flux = _windows(curve, mids[kept], width, cfg)
        overlapping = count_overlaps_many(starts[kept], ends[kept], others)
        base = tce_row(tce, cfg)
        for row_index, i in enumerate(kept):
            row = {
                **base,
                "kind": KIND_TRANSIT,
                "midtime": round(float(mids[i]), 6),
                "window_coverage": round(float(win_cov[i]), 4),
                "transit_coverage": round(float(in_cov[i]), 4),
                "n_overlapping_transits": int(overlapping[row_index]),
            }
            uid = f"{tce.tce_uid}_t_{_fmt_time(mids[i])}"
            window = {FLUX_WINDOW: flux[row_index]}
            sources = window_sources(curve, starts[i], ends[i])
            examples.append(TceExample(uid, tce.target_id, tce.tce_uid, tce.label, window, row, sources))
        count = round(cfg.oot_per_transit * len(kept))
        oot, missing = out_of_transit_windows(curve, tce, count, all_transits, cfg, spans)
        examples += oot
        drops += missing
    return examples, drops


def _place_oot(
    curve: Detrended, tce: Tce, count: int, transits: np.ndarray, cfg: TceConfig, spans: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mid-times (k,), coverages (k,) and the number of draws of ``tce``'s out-of-transit windows, k <= count.

    Draws come from ``oot_rng`` in blocks (the same sequence as one draw at a time); the tests against the
    transits and the windows kept before the block run on a whole block, the coverage on the draws that pass
    them, and only the draws that pass all three are checked, in draw order, against the windows kept so far (a
    sorted list: one bisect each). A draw that overlaps a window kept before its block would fail that check too,
    so the result is that of checking every draw in order.
    """
    width = cfg.window_durations * tce.duration_days
    lengths = spans[:, 1] - spans[:, 0]
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    rng = oot_rng(tce.tce_uid, cfg.oot_salt)
    budget = OOT_DRAWS_PER_WINDOW * count if cumulative[-1] > 0 else 0
    kept_mids: list[float] = []
    kept_cov: list[float] = []
    starts: list[float] = []  # sorted starts and ends of the kept windows (same width: same order)
    ends: list[float] = []
    attempts = 0
    block = max(4 * count, 64)
    while len(kept_mids) < count and attempts < budget:
        size = min(block, budget - attempts)
        u = rng.uniform(0.0, cumulative[-1], size=size)
        index = np.minimum(np.searchsorted(cumulative, u, side="right") - 1, len(spans) - 1)
        mid = spans[index, 0] + (u - cumulative[index])
        lo, hi = mid - 0.5 * width, mid + 0.5 * width
        candidates = np.arange(size)
        if starts:  # kept windows are disjoint and sorted: the last one starting at or before hi[j] decides
            at = np.searchsorted(np.asarray(starts), hi, side="right")
            candidates = np.flatnonzero((at == 0) | (np.asarray(ends)[np.maximum(at, 1) - 1] < lo))
        candidates = candidates[count_overlaps_many(lo[candidates], hi[candidates], transits) == 0]
        cov = np.zeros(size)
        cov[candidates] = coverage(curve.time, lo[candidates], hi[candidates], curve.cadence)
        passed = candidates[cov[candidates] >= cfg.min_window_coverage]
        used = size
        for j in passed:
            start, end = float(lo[j]), float(hi[j])
            at = bisect.bisect_right(starts, end)  # kept windows starting at or before this one's end
            if at and ends[at - 1] >= start:
                continue
            starts.insert(at, start)
            ends.insert(at, end)
            kept_mids.append(float(mid[j]))
            kept_cov.append(float(cov[j]))
            if len(kept_mids) == count:
                used = int(j) + 1
                break
        attempts += used
        block *= 2
    return np.asarray(kept_mids), np.asarray(kept_cov), attempts


def out_of_transit_windows(
    curve: Detrended, tce: Tce, count: int, transits: np.ndarray, cfg: TceConfig, spans: np.ndarray
) -> tuple[list[TceExample], list[Drop]]:
    """``count`` label-0 windows of ``tce``'s width that overlap no transit of any TCE of the target.

    Centres are drawn uniformly over the union of the (m, 2) light-curve ``spans`` by ``oot_rng(tce_uid)``
    (deterministic, independent of the processing order); a draw is kept when its window overlaps no interval
    of ``transits`` (k, 2) and no window already kept, and has ``cfg.min_window_coverage``. Slots still empty
    after 200 draws per window are returned as drops (no_room_for_out_of_transit).
    """
    width = cfg.window_durations * tce.duration_days
    mids, covs, attempts = _place_oot(curve, tce, count, transits, cfg, spans)
    flux = _windows(curve, mids, width, cfg)
    base = tce_row(tce, cfg)
    examples = []
    for k, mid in enumerate(mids):
        row = {**base, "kind": KIND_OOT, "midtime": round(float(mid), 6), "window_coverage": round(float(covs[k]), 4)}
        uid = f"{tce.tce_uid}_oot_{_fmt_time(mid)}"
        sources = window_sources(curve, mid - 0.5 * width, mid + 0.5 * width)
        examples.append(TceExample(uid, tce.target_id, tce.tce_uid, 0, {FLUX_WINDOW: flux[k]}, row, sources))
    detail = f"no {width:.3f}-d window clear of every transit with enough coverage in {attempts} draws"
    drops = [Drop(f"{tce.tce_uid}_oot_slot{k}", NO_ROOM_FOR_OOT, detail) for k in range(len(examples), count)]
    return examples, drops
