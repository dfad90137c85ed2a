"""Light-curve (TCE) numerics: FITS reading, cleaning, detrending, target-level masks, transit windows, views.

No Beam and no TensorFlow here: numpy/scipy plus astropy for FITS. Units and conventions:

* times are days in the light curve's own system (Kepler BKJD = BJD - 2454833, TESS BTJD = BJD - 2457000);
* TCE periods are days and durations hours, as in the DR25 / SPOC TCE tables (``Tce.duration_days`` converts);
* flux leaves this module as **relative flux minus one** ("delta"): dimensionless, 0 out of transit and
  ``-depth`` at the bottom of a transit (a 1000 ppm transit reaches -1e-3).

Per target (``process_target``, the one call the Beam build stage makes per star)::

    FITS bytes -> read_light_curve: drop flagged / NaN cadences, divide by the file's median
    -> detrend: continuous segments (file boundaries, gaps > gap_days), robust cubic spline per segment
       fitted with EVERY TCE's transits masked, delta = flux / trend - 1
    -> mode "transits": one window per observed transit of each TCE (window_durations x duration wide,
       binned to n_bins), plus as many out-of-transit windows per TCE, placed by sha256(salt:tce_uid)
    -> mode "views": global (phase-folded over the period) and local (+ odd / even) views per TCE, with the
       other TCEs' transits removed

Target-level masks (``transit_windows``): a window of a negative-disposition TCE may not overlap a transit of a
positive TCE of the same star; an out-of-transit window may not overlap any TCE's transit. Every input that does
not become an example comes back as a ``Drop`` with a stable reason, so nothing is lost silently.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from scipy.interpolate import LSQUnivariateSpline

from transforms.recipes.tce.config import TceConfig
from transforms.contract import RejectedInput

# Reasons an input is dropped (the keys of the manifest's ``rejected`` counts).
UNREADABLE_FITS = "unreadable_fits"
MISSING_COLUMNS = "missing_columns"
NO_TARGET_ID = "no_target_id"
EMPTY_LIGHT_CURVE = "empty_light_curve"
BAD_PERIOD = "bad_period"
BAD_TCE = "bad_tce_parameters"
DUPLICATE_TCE = "duplicate_tce"
TCE_WITHOUT_LIGHT_CURVE = "tce_without_light_curve"
LIGHT_CURVE_WITHOUT_TCE = "light_curve_without_tce"
NO_TRANSIT_OBSERVED = "no_transit_observed"
TRANSIT_IN_GAP = "transit_in_gap"
WINDOW_LOW_COVERAGE = "window_low_coverage"
OVERLAPS_POSITIVE = "overlaps_positive_transit"
NO_ROOM_FOR_OOT = "no_room_for_out_of_transit"

FITS_BLOCK = 2880  # bytes; every valid FITS file is a whole number of blocks
HOURS_PER_DAY = 24.0
# Stored feature names (raw shards store them as float32 bytes).
FLUX_WINDOW = "flux_window"
GLOBAL_VIEW, LOCAL_VIEW = "global_view", "local_view"
LOCAL_VIEW_ODD, LOCAL_VIEW_EVEN = "local_view_odd", "local_view_even"
KIND_TRANSIT, KIND_OOT, KIND_VIEW = "transit", "oot", "views"


# Data-table columns of each mode (ARCHITECTURE.md section 3: after uid,target_id,label,shard).
TRANSIT_TABLE_COLUMNS = (
    "tce_uid",
    "kind",
    "disposition",
    "period_days",
    "duration_hours",
    "midtime",
    "window_coverage",
    "transit_coverage",
    "n_overlapping_transits",
)
VIEW_TABLE_COLUMNS = (
    "tce_uid",
    "kind",
    "disposition",
    "period_days",
    "duration_hours",
    "epoch",
    "n_transits",
    "n_odd",
    "n_even",
)
RESERVED_COLUMNS = frozenset(("uid", "target_id", "label", "shard", *TRANSIT_TABLE_COLUMNS, *VIEW_TABLE_COLUMNS))


# ---- records -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightCurve:
    """One cleaned FITS light curve (one quarter / sector).

    ``time``: (n,) float64 days (BKJD / BTJD); ``flux``: (n,) float64 relative flux (divided by the file's median
    of valid cadences, so ~1); only cadences with a zero (masked) quality flag and finite values are kept.
    """

    path: str
    target_id: str
    time: np.ndarray
    flux: np.ndarray
    bjd_ref: float  # BJD of time zero (BJDREFI + BJDREFF), days
    n_cadences: int  # rows in the file, before cleaning
    mission: str = ""


@dataclass(frozen=True)
class Tce:
    """One validated TCE row. ``epoch`` is in the light curve's time system unless ``epoch_is_bjd``."""

    target_id: str
    tce_id: str
    period_days: float
    epoch: float
    duration_hours: float
    disposition: str
    label: int
    row: Mapping[str, str] = field(default_factory=dict)
    epoch_is_bjd: bool = False

    @property
    def tce_uid(self) -> str:
        return f"{self.target_id}-{self.tce_id}"

    @property
    def duration_days(self) -> float:
        return self.duration_hours / HOURS_PER_DAY


@dataclass(frozen=True)
class Drop:
    """An input (file, TCE, transit, out-of-transit slot) that did not become an example, and why."""

    what: str
    reason: str
    detail: str


@dataclass(frozen=True)
class TceExample:
    """One example: float arrays (each stored as float32 bytes) plus its data-table row."""

    uid: str
    target_id: str
    tce_uid: str
    label: int
    arrays: dict[str, np.ndarray]
    row: dict[str, Any]


@dataclass(frozen=True)
class Detrended:
    """A target's light curves after detrending, concatenated in time order.

    ``time``: (n,) float64 days; ``delta``: (n,) float64 relative flux minus one; ``cadence``: days (median
    spacing of the kept cadences).
    """

    time: np.ndarray
    delta: np.ndarray
    cadence: float


# ---- ids and the TCE table ---------------------------------------------------------------------------------------


def normalize_id(text: Any) -> str:
    """A star / TCE id as text: whitespace stripped, integers without leading zeros (``"0011"``, ``"11.0"``)."""
    value = str(text).strip()
    if re.fullmatch(r"\d+", value):
        return str(int(value))
    if re.fullmatch(r"\d+\.0*", value):
        return str(int(float(value)))
    return value


def _finite_float(row: Mapping[str, str], column: str, what: str) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise RejectedInput(BAD_TCE, f"{what} column '{column}' is not a number: {row.get(column)!r}") from None
    return value


def parse_tce(row: Mapping[str, str], cfg: TceConfig) -> Tce:
    """One TCE-table row -> ``Tce``; raises RejectedInput (bad_period, bad_tce_parameters) naming the column."""
    cols = cfg.columns
    target_id = normalize_id(row.get(cols.target_id, ""))
    tce_id = normalize_id(row.get(cols.tce_id, ""))
    if not target_id or not tce_id:
        raise RejectedInput(BAD_TCE, f"empty target id '{cols.target_id}' or TCE id '{cols.tce_id}'")
    try:
        period = float(row[cols.period])
    except (TypeError, ValueError):
        period = float("nan")
    if not np.isfinite(period) or period <= 0:
        raise RejectedInput(
            BAD_PERIOD, f"period column '{cols.period}' must be a positive number of days, got {row.get(cols.period)!r}"
        )
    epoch = _finite_float(row, cols.epoch, "epoch")
    duration = _finite_float(row, cols.duration, "duration")
    if not np.isfinite(epoch):
        raise RejectedInput(BAD_TCE, f"epoch column '{cols.epoch}' is not finite: {row.get(cols.epoch)!r}")
    if not np.isfinite(duration) or duration <= 0 or duration / HOURS_PER_DAY >= period:
        raise RejectedInput(
            BAD_TCE, f"duration column '{cols.duration}' must be in (0, period) hours, got {row.get(cols.duration)!r}"
        )
    disposition = str(row.get(cols.label, "")).strip()
    positives = {p.strip().upper() for p in cfg.positive_labels}
    return Tce(
        target_id=target_id,
        tce_id=tce_id,
        period_days=period,
        epoch=epoch,
        duration_hours=duration,
        disposition=disposition,
        label=int(disposition.upper() in positives or normalize_id(disposition).upper() in positives),
        row=dict(row),
        epoch_is_bjd=cfg.epoch_reference == "bjd",
    )


# ---- FITS --------------------------------------------------------------------------------------------------------


def target_id_from_filename(path: str, pattern: str) -> str | None:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    match = re.search(pattern, name)
    return normalize_id(match.group(1)) if match else None


def _open_table(data: bytes, path: str) -> tuple[list[fits.Header], list[str], Any]:
    """(headers [primary, table], column names, table data) of the light-curve HDU; RejectedInput if unreadable."""
    if not data or len(data) % FITS_BLOCK:
        raise RejectedInput(
            UNREADABLE_FITS, f"{len(data)} bytes is not a whole number of {FITS_BLOCK}-byte FITS blocks (truncated?)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                names = [h.name for h in hdul]
                hdu = hdul["LIGHTCURVE"] if "LIGHTCURVE" in names else hdul[1]
                if not isinstance(hdu, fits.BinTableHDU):
                    raise TypeError(f"HDU '{hdu.name}' is not a binary table")
                table = hdu.data
                columns = list(hdu.columns.names)
                loaded = {name: np.array(table[name]) for name in columns}
                return [hdul[0].header.copy(), hdu.header.copy()], columns, loaded
    except (OSError, ValueError, TypeError, IndexError, KeyError) as error:
        raise RejectedInput(UNREADABLE_FITS, f"not a readable FITS light curve: {error}") from None


def read_light_curve(data: bytes, path: str, cfg: TceConfig) -> LightCurve:
    """FITS bytes -> cleaned ``LightCurve``; raises RejectedInput (unreadable_fits, missing_columns, ...).

    Cleaning: drops cadences whose quality flag is set (any bit, or ``cfg.quality_bitmask``), or whose time,
    flux or flux error is not finite; divides the flux by the median of the kept cadences.
    """
    headers, columns, table = _open_table(data, path)
    wanted = [cfg.time_column, cfg.flux_column, cfg.flux_err_column, cfg.quality_column]
    missing = [c for c in wanted if c is not None and c not in columns]
    if missing:
        raise RejectedInput(MISSING_COLUMNS, f"light-curve table lacks {missing} (has {columns})")
    if cfg.target_id_source == "header":
        found = (h[k] for k in cfg.header_keys for h in headers if k in h and str(h[k]).strip())
        target_id = normalize_id(next(found, ""))
    else:
        target_id = target_id_from_filename(path, cfg.filename_regex) or ""
    if not target_id:
        raise RejectedInput(
            NO_TARGET_ID, f"no target id (source {cfg.target_id_source}: keys {cfg.header_keys} / {cfg.filename_regex})"
        )
    time = np.asarray(table[cfg.time_column], dtype=np.float64)
    flux = np.asarray(table[cfg.flux_column], dtype=np.float64)
    good = np.isfinite(time) & np.isfinite(flux)
    if cfg.flux_err_column is not None:
        good &= np.isfinite(np.asarray(table[cfg.flux_err_column], dtype=np.float64))
    if cfg.quality_column is not None:
        quality = np.asarray(table[cfg.quality_column]).astype(np.int64)
        good &= (quality == 0) if cfg.quality_bitmask is None else (quality & cfg.quality_bitmask) == 0
    if good.sum() < 3:
        raise RejectedInput(EMPTY_LIGHT_CURVE, f"{int(good.sum())} valid cadences out of {len(time)}")
    median = np.median(flux[good])
    if not median > 0:
        raise RejectedInput(EMPTY_LIGHT_CURVE, f"median flux {median} is not positive")
    order = np.argsort(time[good], kind="stable")
    bjd_ref = sum(float(h.get(k, 0.0)) for k in ("BJDREFI", "BJDREFF") for h in headers[1:])
    return LightCurve(
        path=path,
        target_id=target_id,
        time=time[good][order],
        flux=flux[good][order] / median,
        bjd_ref=bjd_ref,
        n_cadences=len(time),
        mission=str(headers[0].get("MISSION", headers[0].get("TELESCOP", ""))).strip(),
    )


# ---- ephemerides and masks ---------------------------------------------------------------------------------------


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


# ---- detrending --------------------------------------------------------------------------------------------------


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
    for knot in candidates:
        index = int(np.searchsorted(t_fit, knot))
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
    times, deltas = [], []
    for curve in curves:
        intervals = transit_intervals(tces, curve.time[0], curve.time[-1], cfg.mask_width_factor)
        out_of_transit = ~in_intervals(curve.time, intervals)
        for seg in split_segments(curve.time, cfg.gap_days):
            t, f = curve.time[seg], curve.flux[seg]
            trend = robust_spline(t, f, out_of_transit[seg], cfg.knot_spacing_days, cfg.clip_sigma, cfg.clip_iterations)
            ok = np.isfinite(trend) & (trend > 0)
            times.append(t[ok])
            deltas.append(f[ok] / trend[ok] - 1.0)
    time = np.concatenate(times) if times else np.zeros(0)
    delta = np.concatenate(deltas) if deltas else np.zeros(0)
    order = np.argsort(time, kind="stable")
    steps = np.diff(time[order])
    steps = steps[steps > 0]
    cadence = float(np.median(steps)) if len(steps) else 1.0 / HOURS_PER_DAY
    return Detrended(time=time[order], delta=delta[order], cadence=cadence)


# ---- binning -----------------------------------------------------------------------------------------------------


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


def box_centre_offset(time: np.ndarray, delta: np.ndarray, mid: float, duration: float, search: float) -> float:
    """Offset (days) from ``mid`` of the box of width ``duration`` with the lowest mean flux, searched over
    centres in ``mid +- search`` on a grid of duration / 20. Used to measure how well windows are centred."""
    best, best_offset = np.inf, np.nan
    for offset in np.arange(-search, search + 1e-12, duration / 20.0):
        inside = np.abs(time - (mid + offset)) <= 0.5 * duration
        if inside.sum() >= 2:
            value = float(np.mean(delta[inside]))
            if value < best:
                best, best_offset = value, float(offset)
    return best_offset


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


def _tce_row(tce: Tce, cfg: TceConfig) -> dict[str, Any]:
    """The TCE-table row as data-table columns (the label column becomes ``disposition``)."""
    skip = {cfg.columns.target_id, cfg.columns.label}
    row = {table_column(k): v for k, v in tce.row.items() if k not in skip}
    row.update(
        tce_uid=tce.tce_uid,
        disposition=tce.disposition,
        period_days=tce.period_days,
        duration_hours=tce.duration_hours,
    )
    return row


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


def table_column(name: str) -> str:
    """A TCE-table column's name in the data tables: prefixed with ``csv_`` where it clashes with ours."""
    return f"csv_{name}" if name in RESERVED_COLUMNS else name


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
        base = _tce_row(tce, cfg)
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
    base = _tce_row(tce, cfg)
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


# ---- examples: mode "views" --------------------------------------------------------------------------------------


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
    for tce in tces:
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
        row = {**_tce_row(tce, cfg), "kind": KIND_VIEW, "epoch": tce.epoch, **info}
        examples.append(TceExample(tce.tce_uid, tce.target_id, tce.tce_uid, tce.label, arrays, row))
    return examples, drops


# ---- one target --------------------------------------------------------------------------------------------------


def process_target(
    target_id: str, curves: Sequence[LightCurve], tces: Sequence[Tce], cfg: TceConfig
) -> tuple[list[TceExample], list[Drop]]:
    """All examples of one star from its cleaned light curves and its validated TCEs, plus every drop.

    Light curves without a TCE and TCEs without a light curve are dropped with their reason; of rows with the
    same TCE uid one is kept (the first in sorted order) and the others are dropped as duplicate_tce. The result
    does not depend on the order of ``curves`` and ``tces``.
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
        return [], drops + [
            Drop(t.tce_uid, TCE_WITHOUT_LIGHT_CURVE, f"no readable light curve for target {target_id}") for t in tces
        ]
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
