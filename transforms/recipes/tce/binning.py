"""Median binning and coverage of light curves, vectorized: one sort, medians by segment, no loop per bin or window.

Times are days (or phase days), values relative flux minus one. A bin set is ``n_bins`` bins whose centres are
evenly spaced over [lo, hi]; a bin is ``max(spacing, bin_width)`` wide, so bins narrower than the cadence overlap
their neighbours. The median of a bin is the middle value (the mean of the two middle values for an even count),
as ``np.median``; empty bins are filled by linear interpolation between the nearest non-empty bins of the same
set, as ``np.interp`` (0 if all are empty).
"""

from __future__ import annotations

import numpy as np


def ragged_medians(values: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(m,) medians of ``values[left[i]:right[i]]`` (0 for an empty range); ranges may overlap.

    Ranges of one or two values are read directly; the longer ones are gathered into one array, sorted once by
    (range, value), and each median is read at the middle of its segment. O(G log G) for G gathered values, no
    Python loop.
    """
    counts = np.maximum(right - left, 0)
    out = np.zeros(len(counts))
    one, two = counts == 1, counts == 2
    out[one] = values[left[one]]
    out[two] = (values[left[two]] + values[left[two] + 1]) / 2.0
    full = np.flatnonzero(counts > 2)
    if len(full) == 0:
        return out
    sizes = counts[full]
    offsets = np.cumsum(sizes) - sizes
    segment = np.repeat(np.arange(len(full)), sizes)
    index = np.arange(int(sizes.sum())) - offsets[segment] + left[full][segment]
    gathered = values[index]
    ordered = gathered[np.lexsort((gathered, segment))]
    low = ordered[offsets + (sizes - 1) // 2]
    high = ordered[offsets + sizes // 2]
    out[full] = (low + high) / 2.0
    return out


def fill_empty_bins(values: np.ndarray, counts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(r, n) ``values`` with each row's empty bins (count 0) interpolated linearly between its nearest non-empty
    bins over ``centres`` (r, n); ends take the nearest non-empty value; a row with no data stays 0. Same result
    as ``np.interp(centres[~filled], centres[filled], values[filled])`` per row, without the loop over rows.
    """
    values = values.copy()
    filled = counts > 0
    n = values.shape[1]
    columns = np.arange(n)
    prev = np.maximum.accumulate(np.where(filled, columns, -1), axis=1)
    after = np.minimum.accumulate(np.where(filled, columns, n)[:, ::-1], axis=1)[:, ::-1]
    rows, cols = np.nonzero(~filled & filled.any(axis=1)[:, None])
    p, q = prev[rows, cols], after[rows, cols]
    result = np.empty(len(rows))
    before, beyond = p < 0, q >= n
    result[before] = values[rows[before], q[before]]
    result[beyond] = values[rows[beyond], p[beyond]]
    inner = ~before & ~beyond
    r, p, q, x = rows[inner], p[inner], q[inner], centres[rows[inner], cols[inner]]
    slope = (values[r, q] - values[r, p]) / (centres[r, q] - centres[r, p])
    result[inner] = slope * (x - centres[r, p]) + values[r, p]
    values[rows, cols] = result
    return values


def bin_rows(
    time: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_bins: int, bin_width: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Median-binned windows [lo[i], hi[i]] of sorted ``time`` (n,) / ``y`` (n,): ``(values, counts)``, (r, n_bins).

    Row i is ``bin_median`` of the samples with lo[i] <= time <= hi[i], all rows in one pass.
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    order = np.argsort(lo, kind="stable")  # rows in time order: every search below has sorted keys
    lo, hi = lo[order], hi[order]
    first = np.searchsorted(time, lo, side="left")[:, None]
    stop = np.searchsorted(time, hi, side="right")[:, None]
    spacing = ((hi - lo) / n_bins)[:, None]
    width = np.maximum(spacing, bin_width)
    centres = lo[:, None] + (np.arange(n_bins) + 0.5) * spacing
    left = np.clip(np.searchsorted(time, centres - 0.5 * width, side="left"), first, stop)
    right = np.clip(np.searchsorted(time, centres + 0.5 * width, side="right"), first, stop)
    counts = right - left
    values = fill_empty_bins(ragged_medians(y, left.ravel(), right.ravel()).reshape(counts.shape), counts, centres)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return values[back], counts[back]


def bin_median(
    x: np.ndarray, y: np.ndarray, lo: float, hi: float, n_bins: int, bin_width: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``y`` in ``n_bins`` bins with centres evenly spaced over [lo, hi].

    ``bin_width`` (same unit as ``x``) defaults to the spacing ``(hi - lo) / n_bins``; a wider bin overlaps its
    neighbours (used when bins are narrower than the cadence). Returns ``(values (n_bins,), counts (n_bins,))``;
    empty bins are filled by linear interpolation between the nearest non-empty bins (0 if all are empty).
    Samples outside [lo, hi] still count in the edge bins when those reach past it.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    spacing = (hi - lo) / n_bins
    width = max(spacing, bin_width or 0.0)
    centres = (lo + (np.arange(n_bins) + 0.5) * spacing)[None, :]
    left = np.searchsorted(xs, centres - 0.5 * width, side="left")
    right = np.searchsorted(xs, centres + 0.5 * width, side="right")
    counts = right - left
    values = ragged_medians(ys, left.ravel(), right.ravel())[None, :]
    return fill_empty_bins(values, counts, centres)[0], counts[0]


def coverage(time: np.ndarray, start, end, cadence: float):
    """Fraction of the cadences expected in [start, end] (days) that are present in sorted ``time``.

    ``start`` / ``end`` scalars give a float, arrays (m,) an (m,) array.
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    expected = np.maximum((end - start) / cadence, 1.0)
    order = np.argsort(start, axis=None, kind="stable")  # sorted keys search faster
    present = np.empty(start.shape, dtype=np.int64)
    present.flat[order] = np.searchsorted(time, end.flat[order], side="right") - np.searchsorted(
        time, start.flat[order], side="left"
    )
    fraction = np.minimum(present / expected, 1.0)
    return float(fraction) if fraction.ndim == 0 else fraction
