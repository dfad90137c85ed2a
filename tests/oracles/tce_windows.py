"""The light-curve window code as it was before it was vectorized: the per-bin median loop, the scalar coverage,
the per-transit loop, the out-of-transit draw loop and the per-interval mask and overlap counts. The oracle that
``tests/unit/transforms/recipes/tce/test_windows_equal.py`` pins the fast implementation against; the package
never imports it. Helpers the vectorization left unchanged (``ephemeris.transit_times``,
``windows.observed_transits``) come from the package; the out-of-transit seed (``oot_rng``) and the uid time
format stay copied here, so that the pin covers them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.detrend import Detrended
from transforms.recipes.tce.ephemeris import transit_times
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
)
from transforms.recipes.tce.windows import observed_transits


# ---- ephemeris (transforms/recipes/tce/ephemeris.py) ---------------------------------------------------------
def transit_intervals(tces: Iterable[Tce], t_min: float, t_max: float, width_factor: float) -> np.ndarray:
    """(k, 2) [start, end] days of every transit of ``tces`` that reaches into [t_min, t_max].

    Each interval is ``width_factor`` x the duration wide, centred on the mid-time.
    """
    rows = []
    for tce in tces:
        half = 0.5 * width_factor * tce.duration_days
        for mid in transit_times(tce.period_days, tce.epoch, t_min - half, t_max + half):
            rows.append((mid - half, mid + half))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def in_intervals(time: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """(n,) bool: whether each time lies in any of the (k, 2) closed intervals."""
    mask = np.zeros(time.shape, dtype=bool)
    for start, end in intervals:
        mask |= (time >= start) & (time <= end)
    return mask


def count_overlaps(start: float, end: float, intervals: np.ndarray) -> int:
    """How many of the (k, 2) intervals overlap [start, end]."""
    return int(np.sum((intervals[:, 0] <= end) & (intervals[:, 1] >= start))) if len(intervals) else 0


def overlaps_any(start: float, end: float, intervals: np.ndarray) -> bool:
    """Whether [start, end] overlaps any of the (k, 2) intervals."""
    return bool(np.any((intervals[:, 0] <= end) & (intervals[:, 1] >= start))) if len(intervals) else False


# ---- binning and windows (transforms/recipes/tce/windows.py) ------------------------------------------


def bin_median(
    x: np.ndarray, y: np.ndarray, lo: float, hi: float, n_bins: int, bin_width: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``y`` in ``n_bins`` bins with centres evenly spaced over [lo, hi].

    ``bin_width`` (same unit as ``x``) defaults to the spacing ``(hi - lo) / n_bins``; a wider bin overlaps its
    neighbours (used when bins are narrower than the cadence). Returns ``(values (n_bins,), counts (n_bins,))``;
    empty bins are filled by linear interpolation between the nearest non-empty bins (0 if all are empty).
    """
    spacing = (hi - lo) / n_bins
    width = max(spacing, bin_width or 0.0)
    centres = lo + (np.arange(n_bins) + 0.5) * spacing
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    left = np.searchsorted(xs, centres - 0.5 * width, side="left")
    right = np.searchsorted(xs, centres + 0.5 * width, side="right")
    counts = right - left
    values = np.zeros(n_bins)
    filled = counts > 0
    for i in np.flatnonzero(filled):
        values[i] = np.median(ys[left[i] : right[i]])
    if filled.any() and not filled.all():
        values[~filled] = np.interp(centres[~filled], centres[filled], values[filled])
    return values, counts


def coverage(time: np.ndarray, start: float, end: float, cadence: float) -> float:
    """Fraction of the cadences expected in [start, end] (days) that are present in sorted ``time``."""
    expected = max((end - start) / cadence, 1.0)
    present = np.searchsorted(time, end, side="right") - np.searchsorted(time, start, side="left")
    return float(min(present / expected, 1.0))


# ---- examples: mode "transits" -----------------------------------------------------------------------------------


def _fmt_time(t: float) -> str:
    return f"{t:.4f}"


def _window(curve: Detrended, mid: float, width: float, cfg: TceConfig) -> np.ndarray:
    inside = slice(
        np.searchsorted(curve.time, mid - 0.5 * width, side="left"),
        np.searchsorted(curve.time, mid + 0.5 * width, side="right"),
    )
    values, _ = bin_median(
        curve.time[inside],
        curve.delta[inside],
        mid - 0.5 * width,
        mid + 0.5 * width,
        cfg.n_bins,
        bin_width=curve.cadence,
    )
    return values


def oot_rng(tce_uid: str, salt: str) -> np.random.Generator:
    """The generator that places a TCE's out-of-transit windows: seeded by sha256(salt:tce_uid)."""
    seed = int.from_bytes(hashlib.sha256(f"{salt}:{tce_uid}".encode()).digest()[:8], "big")
    return np.random.default_rng(seed)


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
    transits (1 x duration) inside it.
    """
    examples: list[TceExample] = []
    drops: list[Drop] = []
    t_lo, t_hi = float(spans[:, 0].min()), float(spans[:, 1].max())
    all_transits = transit_intervals(tces, t_lo, t_hi, cfg.mask_width_factor)
    positive_transits = transit_intervals([t for t in tces if t.label == 1], t_lo, t_hi, cfg.mask_width_factor)
    for tce in tces:
        width = cfg.window_durations * tce.duration_days
        half = 0.5 * tce.duration_days
        mids = observed_transits(tce, spans)
        if len(mids) == 0:
            drops.append(Drop(tce.tce_uid, NO_TRANSIT_OBSERVED, "no predicted transit within a light curve's span"))
            continue
        others = transit_intervals([t for t in tces if t.tce_uid != tce.tce_uid], t_lo, t_hi, 1.0)
        base = tce_row(tce, cfg)
        written = 0
        for mid in mids:
            uid = f"{tce.tce_uid}_t_{_fmt_time(mid)}"
            start, end = mid - 0.5 * width, mid + 0.5 * width
            in_cov = coverage(curve.time, mid - half, mid + half, curve.cadence)
            win_cov = coverage(curve.time, start, end, curve.cadence)
            if in_cov < cfg.min_transit_coverage:
                detail = f"{in_cov:.0%} of the in-transit cadences present (< {cfg.min_transit_coverage:.0%})"
                drops.append(Drop(uid, TRANSIT_IN_GAP, detail))
            elif win_cov < cfg.min_window_coverage:
                detail = f"{win_cov:.0%} of the window's cadences present (< {cfg.min_window_coverage:.0%})"
                drops.append(Drop(uid, WINDOW_LOW_COVERAGE, detail))
            elif tce.label == 0 and overlaps_any(start, end, positive_transits):
                drops.append(Drop(uid, OVERLAPS_POSITIVE, "the window of a negative TCE overlaps a positive transit"))
            else:
                row = {
                    **base,
                    "kind": KIND_TRANSIT,
                    "midtime": round(float(mid), 6),
                    "window_coverage": round(win_cov, 4),
                    "transit_coverage": round(in_cov, 4),
                    "n_overlapping_transits": count_overlaps(start, end, others),
                }
                window = {FLUX_WINDOW: _window(curve, mid, width, cfg)}
                examples.append(TceExample(uid, tce.target_id, tce.tce_uid, tce.label, window, row))
                written += 1
        count = round(cfg.oot_per_transit * written)
        oot, missing = out_of_transit_windows(curve, tce, count, all_transits, cfg, spans)
        examples += oot
        drops += missing
    return examples, drops


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
    lengths = spans[:, 1] - spans[:, 0]
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    rng = oot_rng(tce.tce_uid, cfg.oot_salt)
    examples: list[TceExample] = []
    taken = np.zeros((0, 2))
    base = tce_row(tce, cfg)
    attempts = 0
    while len(examples) < count and attempts < 200 * count and cumulative[-1] > 0:
        attempts += 1
        u = float(rng.uniform(0.0, cumulative[-1]))
        index = min(int(np.searchsorted(cumulative, u, side="right")) - 1, len(spans) - 1)
        mid = float(spans[index, 0] + (u - cumulative[index]))
        start, end = mid - 0.5 * width, mid + 0.5 * width
        if overlaps_any(start, end, transits) or overlaps_any(start, end, taken):
            continue
        win_cov = coverage(curve.time, start, end, curve.cadence)
        if win_cov < cfg.min_window_coverage:
            continue
        taken = np.vstack([taken, [start, end]])
        row = {**base, "kind": KIND_OOT, "midtime": round(mid, 6), "window_coverage": round(win_cov, 4)}
        window = {FLUX_WINDOW: _window(curve, mid, width, cfg)}
        examples.append(TceExample(f"{tce.tce_uid}_oot_{_fmt_time(mid)}", tce.target_id, tce.tce_uid, 0, window, row))
    detail = f"no {width:.3f}-d window clear of every transit with enough coverage in {attempts} draws"
    drops = [Drop(f"{tce.tce_uid}_oot_slot{k}", NO_ROOM_FOR_OOT, detail) for k in range(len(examples), count)]
    return examples, drops
