"""Detrending: continuous segments, spline knots, a robust (sigma-clipped) cubic spline per segment, and a
target's light curves -> one ``Detrended`` curve of relative flux minus one.

Input: cleaned ``LightCurve`` s (``time`` (n,) days, ``flux`` (n,) relative flux ~1). Output: ``Detrended``
with ``time`` (n,) days, ``delta`` (n,) = flux / trend - 1 (dimensionless, 0 out of transit, ``-depth`` at the
bottom of a transit) and ``cadence`` in days. Every TCE's transits are masked out of the fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import LSQUnivariateSpline

from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.ephemeris import in_intervals, transit_intervals
from transforms.recipes.tce.schema import HOURS_PER_DAY, LightCurve, Tce


@dataclass(frozen=True)
class Detrended:
    """A target's light curves after detrending, concatenated in time order.

    ``time``: (n,) float64 days; ``delta``: (n,) float64 relative flux minus one; ``cadence``: days (median
    spacing of the kept cadences). Provenance of each cadence (None when not tracked): ``file_index`` (n,) its
    light curve in ``files`` ((source, sha256) per light curve, in the order detrended), ``rows`` (n,) its row
    in that file's table.
    """

    time: np.ndarray
    delta: np.ndarray
    cadence: float
    file_index: np.ndarray | None = None
    rows: np.ndarray | None = None
    files: tuple[tuple[str, str], ...] = ()


def split_segments(time: np.ndarray, gap_days: float) -> list[slice]:
    """Continuous runs of sorted ``time`` (days): a new segment starts after a gap longer than ``gap_days``."""
    if len(time) == 0:
        return []
    cuts = np.flatnonzero(np.diff(time) > gap_days) + 1
    edges = [0, *cuts.tolist(), len(time)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _knots(t_fit: np.ndarray, spacing: float, min_points: int) -> np.ndarray:
    """Interior knots every ``spacing`` days, merged so each knot interval holds >= ``min_points`` fit points."""
    t0, t1 = t_fit[0], t_fit[-1]
    candidates = np.arange(t0 + spacing, t1 - 0.5 * spacing, spacing)
    knots, last_index = [], 0
    for knot, index in zip(candidates.tolist(), np.searchsorted(t_fit, candidates).tolist(), strict=True):
        if index - last_index >= min_points and len(t_fit) - index >= min_points:
            knots.append(knot)
            last_index = index
    return np.asarray(knots)


def robust_spline(
    time: np.ndarray,
    flux: np.ndarray,
    fit_mask: np.ndarray,
    knot_spacing: float,
    clip_sigma: float = 3.0,
    iterations: int = 5,
) -> np.ndarray:
    """Trend of one segment: a cubic least-squares spline through the ``fit_mask`` points, sigma-clipped.

    ``time`` (n,) days sorted, ``flux`` (n,), ``fit_mask`` (n,) bool (False = masked, e.g. in transit).
    Knots every ``knot_spacing`` days (fewer where data are sparse); outliers beyond ``clip_sigma`` x the
    MAD-estimated scatter are removed and the fit repeated up to ``iterations`` times. A segment too short for a
    spline gets a polynomial (degree <= 2). Returns the (n,) trend, NaN if fewer than 3 points can be fitted.
    """
    inliers = fit_mask.copy()
    trend = np.full(time.shape, np.nan)
    for _ in range(iterations):
        t_fit, f_fit = time[inliers], flux[inliers]
        if len(t_fit) < 3:
            return np.full(time.shape, np.nan)
        knots = _knots(t_fit, knot_spacing, min_points=4)
        trend = None
        if len(knots) and len(t_fit) >= 8:
            try:
                spline = LSQUnivariateSpline(t_fit, f_fit, knots, k=3, bbox=[time[0], time[-1]])
                trend = spline(time)
            except ValueError:
                trend = None
        if trend is None:
            degree = min(2, len(t_fit) - 1)
            centre = 0.5 * (time[0] + time[-1])
            coeffs = np.polyfit(t_fit - centre, f_fit, degree)
            trend = np.polyval(coeffs, time - centre)
        residual = flux - trend
        sigma = 1.4826 * np.median(np.abs(residual[inliers] - np.median(residual[inliers])))
        if not sigma > 0:
            break
        clipped = fit_mask & (np.abs(residual) <= clip_sigma * sigma)
        if np.array_equal(clipped, inliers):
            break
        inliers = clipped
    return trend


def detrend(curves: Sequence[LightCurve], tces: Sequence[Tce], cfg: TceConfig) -> Detrended:
    """Cleaned light curves of one target -> one time-ordered ``Detrended`` curve (relative flux minus one).

    Each file is split into continuous segments (gaps > ``cfg.gap_days``); each segment gets a robust spline
    fitted with every transit of every TCE masked (``cfg.mask_width_factor`` x duration), so transits are
    neither fitted away nor distorted. Cadences whose trend cannot be fitted are dropped.
    """
    times, deltas, indices, rows = [], [], [], []
    for index, curve in enumerate(curves):
        curve_rows = curve.rows if curve.rows is not None else np.arange(len(curve.time))
        intervals = transit_intervals(tces, curve.time[0], curve.time[-1], cfg.mask_width_factor)
        out_of_transit = ~in_intervals(curve.time, intervals)
        for seg in split_segments(curve.time, cfg.gap_days):
            t, f = curve.time[seg], curve.flux[seg]
            trend = robust_spline(t, f, out_of_transit[seg], cfg.knot_spacing_days, cfg.clip_sigma, cfg.clip_iterations)
            ok = np.isfinite(trend) & (trend > 0)
            times.append(t[ok])
            deltas.append(f[ok] / trend[ok] - 1.0)
            indices.append(np.full(int(ok.sum()), index, dtype=np.int32))
            rows.append(curve_rows[seg][ok])
    time = np.concatenate(times) if times else np.zeros(0)
    delta = np.concatenate(deltas) if deltas else np.zeros(0)
    order = np.argsort(time, kind="stable")
    steps = np.diff(time[order])
    steps = steps[steps > 0]
    cadence = float(np.median(steps)) if len(steps) else 1.0 / HOURS_PER_DAY
    return Detrended(
        time=time[order],
        delta=delta[order],
        cadence=cadence,
        file_index=np.concatenate(indices)[order] if indices else np.zeros(0, dtype=np.int32),
        rows=np.concatenate(rows)[order] if rows else np.zeros(0, dtype=np.int64),
        files=tuple((curve.source or curve.path, curve.sha256) for curve in curves),
    )
