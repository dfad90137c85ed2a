"""Transit ephemerides and time-interval masks: predicted mid-times, transit intervals, overlap tests.

All times are days in the light curve's system; periods days, durations via ``Tce.duration_days``. Intervals
are (k, 2) float64 arrays of closed [start, end] days; masks are (n,) bool over a (n,) time array.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from transforms.recipes.tce.schema import Tce


def transit_times(period: float, epoch: float, t_min: float, t_max: float) -> np.ndarray:
    """Mid-times (days) of the transits with ``t_min <= t <= t_max``: ``epoch + n * period``, n integer."""
    first = np.ceil((t_min - epoch) / period)
    last = np.floor((t_max - epoch) / period)
    return epoch + np.arange(first, last + 1) * period


def transit_intervals(tces: Iterable[Tce], t_min: float, t_max: float, width_factor: float) -> np.ndarray:
    """(k, 2) [start, end] days of every transit of ``tces`` that reaches into [t_min, t_max].

    Each interval is ``width_factor`` x the duration wide, centred on the mid-time.
    """
    blocks = [np.zeros((0, 2))]
    for tce in tces:
        half = 0.5 * width_factor * tce.duration_days
        mids = transit_times(tce.period_days, tce.epoch, t_min - half, t_max + half)
        blocks.append(np.stack([mids - half, mids + half], axis=1))
    return np.concatenate(blocks).astype(np.float64, copy=False)


def in_intervals(time: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """(n,) bool: whether each time lies in any of the (k, 2) closed intervals.

    One sort of the intervals by start and a running maximum of their ends: a time is inside iff the largest
    end among the intervals starting at or before it reaches it. O((n + k) log k), no loop over intervals.
    """
    mask = np.zeros(np.shape(time), dtype=bool)
    if len(intervals) == 0:
        return mask
    order = np.argsort(intervals[:, 0], kind="stable")
    starts = intervals[order, 0]
    reach = np.maximum.accumulate(intervals[order, 1])
    last = np.searchsorted(starts, time, side="right") - 1
    started = last >= 0
    mask[started] = reach[last[started]] >= time[started]
    return mask


def count_overlaps_many(starts: np.ndarray, ends: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """(m,) int: how many of the (k, 2) intervals overlap each [starts[i], ends[i]] (closed; starts <= ends).

    An interval overlaps unless it starts after the end or ends before the start, and no interval does both,
    so the count is #(interval starts <= end) - #(interval ends < start): two searchsorted, no loop.
    """
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if len(intervals) == 0:
        return np.zeros(starts.shape, dtype=np.int64)
    begun = np.searchsorted(np.sort(intervals[:, 0]), ends, side="right")
    over = np.searchsorted(np.sort(intervals[:, 1]), starts, side="left")
    return (begun - over).astype(np.int64)


def count_overlaps(start: float, end: float, intervals: np.ndarray) -> int:
    """How many of the (k, 2) intervals overlap [start, end]."""
    return int(count_overlaps_many(np.array([start]), np.array([end]), intervals)[0])


def overlaps_any(start: float, end: float, intervals: np.ndarray) -> bool:
    """Whether [start, end] overlaps any of the (k, 2) intervals."""
    return count_overlaps(start, end, intervals) > 0
