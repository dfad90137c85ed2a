"""Detrending (transforms/recipes/tce/detrend.py): segments at gaps, the robust spline, masked transits."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tce_fixture import CADENCE, make_cfg, make_curve, make_row
from transforms.recipes.tce import detrend, ephemeris, tce_table


def test_split_segments_at_gaps():
    time = np.array([0.0, 0.1, 0.2, 1.0, 1.1, 5.0])
    assert detrend.split_segments(time, 0.5) == [slice(0, 3), slice(3, 5), slice(5, 6)]


def test_robust_spline_follows_variability_and_ignores_outliers():
    rng = np.random.default_rng(1)
    time = np.arange(0, 20, CADENCE)
    trend = 1 + 2e-3 * np.sin(2 * np.pi * time / 7.0) + 1e-4 * time
    flux = trend + rng.normal(0, 1e-4, time.size)
    outliers = rng.choice(time.size, 20, replace=False)
    flux[outliers] -= 5e-3  # clipped, not followed
    fitted = detrend.robust_spline(time, flux, np.ones(time.size, bool), knot_spacing=1.5)
    assert np.max(np.abs(fitted - trend)) < 1e-4
    residual = np.delete(flux / fitted - 1, outliers)
    assert np.std(residual) < 1.05e-4 and abs(np.mean(residual)) < 1e-5


def test_detrend_masks_every_tce_so_the_depth_survives():
    cfg = make_cfg()
    curve = make_curve([(3.0, 101.0, 15.0, 250.0)], noise=100e-6)
    tce = tce_table.parse_tce(make_row(period="3.0", epoch="101.0", duration="15.0"), cfg)
    masked = detrend.detrend([curve], [tce], cfg)
    unmasked = detrend.detrend([curve], [], cfg)
    mids = ephemeris.transit_times(3.0, 101.0, 100.0, 130.0)
    distance = np.min(np.abs(masked.time[:, None] - mids[None, :]), axis=1)

    def depth(d):
        return -np.median(d.delta[distance < 0.25 * 15 / 24])

    assert depth(masked) == pytest.approx(250e-6, rel=0.1)
    assert depth(unmasked) < 0.8 * depth(masked)  # an unmasked 15-h transit is partly fitted away
    assert abs(np.median(masked.delta[distance > 1.0])) < 10e-6 and masked.cadence == pytest.approx(CADENCE)
