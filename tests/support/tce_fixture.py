"""Shared helpers of the light-curve (TCE) tests: config and TCE-table row builders, a synthetic light curve with
injected transits, and the real Kepler-90 quarter (tests/data/kepler90).

Units as in the recipe: times and epochs in days (BKJD), periods in days, durations in hours, depths in ppm;
``make_curve`` returns a ``LightCurve`` with (n,) time and relative flux ~1 at the Kepler long cadence.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.support.paths import KEPLER90
from transforms.config import DatasetConfig, validate
from transforms.recipes.tce import fits_io, schema, tce_table
from transforms.recipes.tce import sample as tce_sample

CADENCE = tce_sample.CADENCE_DAYS


def make_cfg(**tce):
    return validate(DatasetConfig, {"recipe": "tce", "tce": tce}).tce


def make_row(target="7", number="1", period="5.0", epoch="102.0", duration="6.0", label="PC"):
    return {
        "target_id": target,
        "tce_plnt_num": number,
        "tce_period": period,
        "tce_time0bk": epoch,
        "tce_duration": duration,
        "label": label,
    }


def make_curve(tces, days=30.0, noise=50e-6, seed=0, start=100.0, target="7", variability=True, drop=None):
    """A cleaned synthetic LightCurve (relative flux ~1) with the trapezoid transits of ``tces`` injected.

    ``tces``: (period d, epoch d, duration h, depth ppm); ``drop``: (start, end) days of cadences removed.
    """
    rng = np.random.default_rng(seed)
    time = start + np.arange(int(days / CADENCE)) * CADENCE
    flux = 1.0 + (3e-3 * np.sin(2 * np.pi * time / 11.0) if variability else 0.0)
    for period, epoch, duration, depth in tces:
        flux = flux * (1 - tce_sample.periodic_transits(time, period, epoch, duration / 24, depth * 1e-6))
    flux = flux + rng.normal(0.0, noise, time.size)
    if drop is not None:
        keep = (time < drop[0]) | (time > drop[1])
        time, flux = time[keep], flux[keep]
    return schema.LightCurve(f"mem://{target}-{start}", target, time, flux, 2454833.0, time.size)


def load_kepler90():
    """(cfg, curve, tces) of the real Kepler-90 quarter; skips the test where the data are not present."""
    if not KEPLER90.is_dir():
        pytest.skip(f"real Kepler-90 fixture {KEPLER90} not present")
    cfg = make_cfg()
    path = next(KEPLER90.glob("*.fits"))
    curve = fits_io.read_light_curve(path.read_bytes(), str(path), cfg)
    with open(next(KEPLER90.glob("*.csv")), newline="") as handle:
        tces = [tce_table.parse_tce(row, cfg) for row in csv.DictReader(handle)]
    return cfg, curve, tces


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
