"""Realistic Kepler-format sample light curves and a DR25-style TCE table (``sigforge make-sample tce``).

Layout written (MAST-like)::

    OUT/{kic[:4]}/{kic}/kplr{kic}-{stamp}_llc.fits   one long-cadence light curve per quarter, kic 9 digits
    OUT/tces.csv                                     target_id,tce_plnt_num,tce_period,tce_time0bk,tce_duration,
                                                     transit_depth,label,kind (+ truth columns)

FITS files follow the Kepler archive format read by ``transforms.recipes.tce.fits_io``: a primary HDU with KEPLERID,
OBJECT, TELESCOP, MISSION, QUARTER, OBSMODE; a ``LIGHTCURVE`` binary table with TIME (``BJD - 2454833``, i.e.
BKJD, float64), CADENCENO, SAP_FLUX / PDCSAP_FLUX / PDCSAP_FLUX_ERR (``e-/s``, float32) and SAP_QUALITY (int32),
with BJDREFI / BJDREFF / TIMEREF / TIMESYS / TSTART / TSTOP in its header.

Physics (numpy only): long cadence 29.4244 min; white noise 60-400 ppm per cadence; stellar variability
(two sinusoids, 5-25 d, 50-1500 ppm) and a slow drift; a data-downlink gap in each quarter; a few flagged
cadences (quality bits, some with NaN flux). Transits are trapezoids (10 % ingress / egress) integrated over the
exposure. Targets are:

* ``planet``: 1-3 planet candidates (label PC), depth 100-10000 ppm, duration 1-15 h;
* ``eb``: an eclipsing binary TCE (label AFP) with either a secondary eclipse at phase 0.5 or an odd / even
  primary depth difference (the TCE found at half the binary period);
* ``noise``: a noise-only false alarm (label NTP) at a random ephemeris, on a star without any eclipse;
* ``mixed``: a planet plus a noise false alarm on the same star (the target-level masks matter);
* ``multi`` (not in the default cycle; ``kinds=("multi",)``): a short-period planet (0.5-1.5 d) plus 2-3 more
  planet candidates and a noise false alarm, the load of a busy catalogue star (benchmarks).

Quarters past the eighth continue every 92 days after the last entry of ``QUARTER_START`` (17 quarters of 88 days
are a Kepler-like 4-year star).

Randomness is ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(index,)))`` per target, so the same seed
gives byte-identical files.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

logger = logging.getLogger(__name__)

CADENCE_DAYS = 29.4243814 / (24 * 60)  # Kepler long cadence
BKJD_REF = 2454833.0
QUARTER_START = (131.5, 169.8, 260.2, 352.4, 443.5, 539.5, 630.2, 720.0)  # BKJD of the first cadences (Q0-Q7-like)
KINDS = ("planet", "eb", "noise", "mixed")  # the default cycle; "multi" is opt-in (``kinds=``)
TCE_COLUMNS = (
    "target_id",
    "tce_plnt_num",
    "tce_period",
    "tce_time0bk",
    "tce_duration",
    "transit_depth",
    "label",
    "kind",
    "secondary_depth",
    "odd_even_ratio",
)
LIGHT_CURVE_COLUMNS = ("TIME", "CADENCENO", "SAP_FLUX", "PDCSAP_FLUX", "PDCSAP_FLUX_ERR", "SAP_QUALITY")


@dataclass(frozen=True)
class InjectedTce:
    """Truth of one TCE: period / epoch days (BKJD), duration hours, depth ppm (the flat bottom)."""

    target_id: str
    number: int
    period: float
    epoch: float
    duration_hours: float
    depth_ppm: float
    label: str
    kind: str
    secondary_depth_ppm: float = 0.0
    odd_even_ratio: float = 1.0

    def table_row(self) -> dict[str, str]:
        return {
            "target_id": self.target_id,
            "tce_plnt_num": str(self.number),
            "tce_period": f"{self.period:.8f}",
            "tce_time0bk": f"{self.epoch:.6f}",
            "tce_duration": f"{self.duration_hours:.4f}",
            "transit_depth": f"{self.depth_ppm:.2f}",
            "label": self.label,
            "kind": self.kind,
            "secondary_depth": f"{self.secondary_depth_ppm:.2f}",
            "odd_even_ratio": f"{self.odd_even_ratio:.4f}",
        }


def trapezoid(time: np.ndarray, mid: float, duration: float, depth: float, ingress_fraction: float = 0.1):
    """Fractional flux deficit (>= 0) of one trapezoidal transit: ``depth`` on the flat bottom, 0 outside.

    ``time``, ``mid``, ``duration`` in days; the total duration (first to fourth contact) is ``duration`` and each
    of ingress and egress lasts ``ingress_fraction`` x duration.
    """
    ramp = ingress_fraction * duration
    distance = np.abs(time - mid)
    edge = 0.5 * duration
    return depth * np.clip((edge - distance) / ramp, 0.0, 1.0)


def periodic_transits(
    time: np.ndarray, period: float, epoch: float, duration: float, depth: float, exposure: float = CADENCE_DAYS
):
    """Deficit of a periodic trapezoid transit, averaged over the exposure (5 sub-samples): (n,) fraction."""
    offsets = (np.arange(5) + 0.5) / 5 - 0.5
    total = np.zeros_like(time)
    for offset in offsets * exposure:
        t = time + offset
        phase = np.mod(t - epoch + 0.5 * period, period) - 0.5 * period
        total += trapezoid(phase, 0.0, duration, depth)
    return total / len(offsets)


def write_kepler_fits(
    path: str,
    kepler_id: int,
    time: np.ndarray,
    flux: np.ndarray,
    flux_err: np.ndarray,
    quality: np.ndarray,
    quarter: int = 1,
    columns: Sequence[str] = LIGHT_CURVE_COLUMNS,
    header_id: bool = True,
) -> None:
    """Writes one Kepler-format long-cadence light curve (``*_llc.fits``).

    ``time``: (n,) BKJD days; ``flux`` / ``flux_err``: (n,) e-/s (PDCSAP; SAP gets the same values);
    ``quality``: (n,) int SAP_QUALITY bits. ``columns`` may leave some out (bad-input tests);
    ``header_id=False`` omits KEPLERID (the id then only comes from the file name).
    """
    primary = fits.PrimaryHDU()
    head = primary.header
    head["TELESCOP"] = ("Kepler", "telescope")
    head["INSTRUME"] = ("Kepler Photometer", "detector type")
    head["OBJECT"] = (f"KIC {kepler_id}", "string version of target id")
    if header_id:
        head["KEPLERID"] = (int(kepler_id), "unique Kepler target identifier")
    head["QUARTER"] = (int(quarter), "Observing quarter")
    head["OBSMODE"] = ("long cadence", "observing mode")
    head["MISSION"] = ("Kepler", "Mission name")
    head["DATA_REL"] = (25, "data release version number")
    n = len(time)
    all_columns = {
        "TIME": fits.Column(name="TIME", format="D", unit="BJD - 2454833", array=time),
        "CADENCENO": fits.Column(name="CADENCENO", format="J", array=np.arange(n, dtype=np.int32) + 1000 * quarter),
        "SAP_FLUX": fits.Column(name="SAP_FLUX", format="E", unit="e-/s", array=flux.astype(np.float32)),
        "PDCSAP_FLUX": fits.Column(name="PDCSAP_FLUX", format="E", unit="e-/s", array=flux.astype(np.float32)),
        "PDCSAP_FLUX_ERR": fits.Column(
            name="PDCSAP_FLUX_ERR", format="E", unit="e-/s", array=flux_err.astype(np.float32)
        ),
        "SAP_QUALITY": fits.Column(name="SAP_QUALITY", format="J", array=quality.astype(np.int32)),
    }
    table = fits.BinTableHDU.from_columns([all_columns[c] for c in columns], name="LIGHTCURVE")
    th = table.header
    th["TIMEREF"] = ("SOLARSYSTEM", "barycentric correction applied to times")
    th["TASSIGN"] = ("SPACECRAFT", "where time is assigned")
    th["TIMESYS"] = ("TDB", "time system is barycentric JD")
    th["BJDREFI"] = (int(BKJD_REF), "integer part of BJD reference date")
    th["BJDREFF"] = (0.0, "fraction of the day in BJD reference date")
    th["TIMEUNIT"] = ("d", "time unit for TIME, TSTART and TSTOP")
    th["TSTART"] = (float(time[0]), "observation start time in BJD-BJDREF")
    th["TSTOP"] = (float(time[-1]), "observation stop time in BJD-BJDREF")
    th["TELAPSE"] = (float(time[-1] - time[0]), "[d] TSTOP - TSTART")
    th["INT_TIME"] = (6.019802903, "[s] photon accumulation time per frame")
    th["NUM_FRM"] = (270, "number of frames per time stamp")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fits.HDUList([primary, table]).writeto(path, overwrite=True)


def write_tess_fits(
    path: str,
    tic_id: int,
    time: np.ndarray,
    flux: np.ndarray,
    flux_err: np.ndarray,
    quality: np.ndarray,
    sector: int = 1,
) -> None:
    """Writes one TESS SPOC-format 2-min light curve (``tess<date>-s<sector>-<tic>-0120-s_lc.fits`` by MAST's
    naming): TICID / SECTOR / OBJECT in the primary header, a ``LIGHTCURVE`` table with TIME (BTJD = BJD -
    2457000, float64), PDCSAP_FLUX / PDCSAP_FLUX_ERR (``e-/s``, float32) and QUALITY (int32), BJDREFI / BJDREFF
    in its header. ``time``: (n,) BTJD days; ``flux`` / ``flux_err``: (n,); ``quality``: (n,) int bits."""
    primary = fits.PrimaryHDU()
    head = primary.header
    head["ORIGIN"] = ("NASA/Ames", "institution responsible for creating this file")
    head["TELESCOP"] = ("TESS", "telescope")
    head["INSTRUME"] = ("TESS Photometer", "detector type")
    head["OBJECT"] = (f"TIC {tic_id}", "string version of target id")
    head["TICID"] = (int(tic_id), "unique tess target identifier")
    head["SECTOR"] = (int(sector), "Observing sector")
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", unit="BJD - 2457000, days", array=time),
            fits.Column(name="PDCSAP_FLUX", format="E", unit="e-/s", array=flux.astype(np.float32)),
            fits.Column(name="PDCSAP_FLUX_ERR", format="E", unit="e-/s", array=flux_err.astype(np.float32)),
            fits.Column(name="QUALITY", format="J", array=quality.astype(np.int32)),
        ],
        name="LIGHTCURVE",
    )
    th = table.header
    th["TIMEREF"] = ("SOLARSYSTEM", "barycentric correction applied to times")
    th["TIMESYS"] = ("TDB", "time system is Barycentric Dynamical Time (TDB)")
    th["BJDREFI"] = (2457000, "integer part of BTJD reference date")
    th["BJDREFF"] = (0.0, "fraction of the day in BTJD reference date")
    th["TIMEUNIT"] = ("d", "time unit for TIME, TSTART and TSTOP")
    th["TSTART"] = (float(time[0]), "observation start time in BTJD")
    th["TSTOP"] = (float(time[-1]), "observation stop time in BTJD")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fits.HDUList([primary, table]).writeto(path, overwrite=True)


def quarter_time(quarter: int, days: float) -> np.ndarray:
    """(n,) BKJD cadence times of a quarter of ``days`` starting at ``QUARTER_START[quarter]``."""
    last = len(QUARTER_START) - 1
    start = QUARTER_START[quarter] if quarter <= last else QUARTER_START[last] + 92.0 * (quarter - last)
    return start + np.arange(int(days / CADENCE_DAYS)) * CADENCE_DAYS


def _draw_tces(rng: np.random.Generator, target_id: str, kind: str, t0: float) -> list[InjectedTce]:
    """The TCEs of one target (see the module docstring for the kinds); epochs near the data start ``t0``."""

    def planet(number: int, label: str = "PC") -> InjectedTce:
        period = float(np.exp(rng.uniform(np.log(1.5), np.log(12.0))))
        duration = float(min(rng.uniform(1.0, 15.0), 24 * 0.08 * period))
        depth = float(np.exp(rng.uniform(np.log(100.0), np.log(10000.0))))
        epoch = t0 + float(rng.uniform(0.2, 0.8)) * period
        return InjectedTce(target_id, number, period, epoch, max(duration, 1.0), depth, label, "planet")

    if kind == "planet":
        return [planet(i + 1) for i in range(int(rng.integers(1, 4)))]
    if kind == "multi":
        period = float(rng.uniform(0.5, 1.5))
        duration = float(max(1.0, min(rng.uniform(1.0, 3.0), 24 * 0.08 * period)))
        depth = float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0))))
        short = InjectedTce(target_id, 1, period, t0 + 0.5 * period, duration, depth, "PC", "planet")
        tces = [short] + [planet(i + 2) for i in range(int(rng.integers(2, 4)))]
        noise = planet(len(tces) + 1, "NTP")
        return tces + [InjectedTce(**{**noise.__dict__, "kind": "noise", "depth_ppm": 0.0})]
    if kind == "mixed":
        tces = [planet(1)]
        noise = planet(2, "NTP")
        return tces + [InjectedTce(**{**noise.__dict__, "kind": "noise", "depth_ppm": 0.0})]
    if kind == "noise":
        noise = planet(1, "NTP")
        return [InjectedTce(**{**noise.__dict__, "kind": "noise", "depth_ppm": 0.0})]
    eb = planet(1, "AFP")
    depth = float(rng.uniform(3000.0, 30000.0))
    if rng.uniform() < 0.5:
        return [
            InjectedTce(
                **{
                    **eb.__dict__,
                    "kind": "eb",
                    "depth_ppm": depth,
                    "secondary_depth_ppm": float(rng.uniform(0.2, 0.6)) * depth,
                }
            )
        ]
    return [
        InjectedTce(**{**eb.__dict__, "kind": "eb", "depth_ppm": depth, "odd_even_ratio": float(rng.uniform(0.3, 0.7))})
    ]


def inject(time: np.ndarray, tce: InjectedTce) -> np.ndarray:
    """(n,) fractional flux deficit of one injected TCE (primary, secondary eclipse, odd / even depths)."""
    duration = tce.duration_hours / 24.0
    if tce.depth_ppm <= 0:
        return np.zeros_like(time)
    depth = tce.depth_ppm * 1e-6
    if tce.odd_even_ratio != 1.0:
        # The binary period is twice the TCE period; odd eclipses are shallower by odd_even_ratio.
        even = periodic_transits(time, 2 * tce.period, tce.epoch, duration, depth)
        odd = periodic_transits(time, 2 * tce.period, tce.epoch + tce.period, duration, depth * tce.odd_even_ratio)
        return even + odd
    deficit = periodic_transits(time, tce.period, tce.epoch, duration, depth)
    if tce.secondary_depth_ppm > 0:
        deficit += periodic_transits(
            time, tce.period, tce.epoch + 0.5 * tce.period, duration, tce.secondary_depth_ppm * 1e-6
        )
    return deficit


def make_target(index: int, seed: int, kind: str, quarters: int, days_per_quarter: float):
    """One target: its id, its TCEs and per quarter (quarter, time, flux, flux_err, quality)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    kic = 2_000_000 + 1000 * index + int(rng.integers(0, 1000))  # unique per index
    target_id = str(kic)
    first = int(rng.integers(1, 5))
    curves = []
    times = [quarter_time(first + q, days_per_quarter) for q in range(quarters)]
    tces = _draw_tces(rng, target_id, kind, times[0][0])
    level = float(np.exp(rng.uniform(np.log(5e3), np.log(2e5))))  # e-/s
    noise = float(rng.uniform(60.0, 400.0)) * 1e-6
    amps = rng.uniform(50.0, 1500.0, size=2) * 1e-6
    periods = rng.uniform(5.0, 25.0, size=2)
    phases = rng.uniform(0, 2 * np.pi, size=2)
    for q, time in enumerate(times):
        variability = sum(a * np.sin(2 * np.pi * time / p + ph) for a, p, ph in zip(amps, periods, phases, strict=True))
        drift = float(rng.uniform(-1e-3, 1e-3)) * (time - time[0]) / days_per_quarter
        deficit = sum((inject(time, tce) for tce in tces), np.zeros_like(time))
        relative = (1.0 + variability + drift) * (1.0 - deficit) + rng.normal(0.0, noise, size=time.size)
        flux = level * float(rng.uniform(0.97, 1.03)) * relative
        flux_err = np.full(time.size, level * noise)
        quality = np.zeros(time.size, dtype=np.int32)
        flagged = rng.choice(time.size, size=max(1, time.size // 150), replace=False)
        quality[flagged] = rng.choice([1, 4, 16, 128, 2048], size=flagged.size)
        flux[flagged[: flagged.size // 2]] = np.nan  # flagged cadences often carry no flux
        # A data-downlink gap of ~1 day somewhere in the middle of the quarter.
        gap_start = time[0] + float(rng.uniform(0.35, 0.65)) * days_per_quarter
        keep = (time < gap_start) | (time > gap_start + 1.0)
        curves.append((first + q, time[keep], flux[keep], flux_err[keep], quality[keep]))
    return target_id, tces, curves


def write_tce_sample(
    out: str,
    n_targets: int = 24,
    seed: int = 0,
    quarters: int = 2,
    days_per_quarter: float = 30.0,
    kinds: Sequence[str] | None = None,
) -> dict:
    """Writes ``n_targets`` stars (kinds cycling planet, eb, noise, mixed) and ``tces.csv`` under ``out``.

    Returns a summary: targets, files, TCEs per label and the paths written.
    """
    kinds = list(kinds or KINDS)
    os.makedirs(out, exist_ok=True)
    rows, paths = [], []
    labels: dict[str, int] = {}
    for index in range(n_targets):
        kind = kinds[index % len(kinds)]
        target_id, tces, curves = make_target(index, seed, kind, quarters, days_per_quarter)
        kic = f"{int(target_id):09d}"
        for quarter, time, flux, flux_err, quality in curves:
            path = os.path.join(out, kic[:4], kic, f"kplr{kic}-q{quarter:02d}_llc.fits")
            write_kepler_fits(path, int(target_id), time, flux, flux_err, quality, quarter=quarter)
            paths.append(path)
        for tce in tces:
            rows.append(tce.table_row())
            labels[tce.label] = labels.get(tce.label, 0) + 1
    write_tce_table(os.path.join(out, "tces.csv"), rows)
    logger.info("tce sample: %d targets, %d files, TCEs %s -> %s", n_targets, len(paths), labels, out)
    return {"targets": n_targets, "files": len(paths), "tces": len(rows), "labels": labels, "paths": paths}


def write_tce_table(path: str, rows: Sequence[Mapping[str, str]], columns: Sequence[str] = TCE_COLUMNS) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
