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
