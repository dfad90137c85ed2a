"""Tests of the G2Net waveform and detector modules: PyCBC detector geometry, IMR polarizations, placement."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from transforms.recipes.g2net import detectors, waveform

FS = 2048.0
N = 4096
PARAMS = waveform.SourceParams(
    m1=30.0,
    m2=20.0,
    spin1x=0.0,
    spin1y=0.0,
    spin1z=0.3,
    spin2x=0.0,
    spin2y=0.0,
    spin2z=-0.2,
    ra=1.2,
    dec=-0.4,
    psi=0.7,
    inclination=0.5,
    phase=0.3,
    tc=1.5,
    gps_time=1238166018.0,
    distance_mpc=400.0,
)


# ------------------------------------------------------------------------------------------------ detectors


def test_antenna_pattern_bounds_and_polarization_rotation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        ra, dec, psi = rng.uniform(0, 2 * math.pi), math.asin(rng.uniform(-1, 1)), rng.uniform(0, math.pi)
        for det in detectors.NETWORK:
            fp, fc = detectors.antenna_pattern(det, ra, dec, psi, 1e9)
            assert fp * fp + fc * fc <= 1.0 + 1e-12
            # A 45-degree polarization rotation maps (F+, Fx) to (Fx, -F+).
            fp45, fc45 = detectors.antenna_pattern(det, ra, dec, psi + math.pi / 4, 1e9)
            assert fp45 == pytest.approx(fc, abs=1e-12) and fc45 == pytest.approx(-fp, abs=1e-12)


def test_time_delays_and_light_travel_times():
    assert detectors.light_travel_time("H1", "L1") == pytest.approx(0.0100, abs=2e-4)
    assert detectors.light_travel_time("H1", "V1") == pytest.approx(0.0273, abs=2e-4)
    rng = np.random.default_rng(1)
    for _ in range(50):
        ra, dec = rng.uniform(0, 2 * math.pi), math.asin(rng.uniform(-1, 1))
        delays = {d: detectors.time_delay_from_geocenter(d, ra, dec, 1e9) for d in detectors.NETWORK}
        assert all(abs(v) <= detectors.EARTH_LIGHT_TIME_S for v in delays.values())
        assert abs(delays["H1"] - delays["L1"]) <= detectors.light_travel_time("H1", "L1") + 1e-9
    with pytest.raises(ValueError, match="K1"):
        detectors.get_detector("K1")


# ------------------------------------------------------------------------------------------------ waveform


def test_polarizations_peak_at_merger_and_scale_with_distance():
    hp, hc, t0 = waveform.polarizations(PARAMS, FS)
    assert hp.shape == hc.shape and t0 < -1.0 and not hp.flags.writeable
    t_peak = t0 + np.argmax(hp**2 + hc**2) / FS
    assert abs(t_peak) < 0.01  # the Phenom merger is at t = 0
    assert 1e-22 < np.abs(hp).max() < 1e-20
    far, _, _ = waveform.polarizations(replace(PARAMS, distance_mpc=800.0), FS)
    np.testing.assert_allclose(far, hp / 2, rtol=1e-6, atol=1e-30)


def test_place_applies_fractional_delays_exactly():
    # A band-limited tone burst (Gaussian envelope, 100 Hz) sampled at t0 + k / fs, placed at a fractional time,
    # equals the analytic burst evaluated on the window's samples.
    t0 = -0.5
    tk = t0 + np.arange(2048) / FS

    def burst(t):
        return np.exp(-((t / 0.05) ** 2)) * np.cos(2 * math.pi * 100.0 * t)

    t_merger = 1.0 + 0.37 / FS
    placed = waveform.place(burst(tk), t0, t_merger, FS, N)
    np.testing.assert_allclose(placed, burst(np.arange(N) / FS - t_merger), atol=1e-9)
    # Integer offsets are exact indexing; parts before the window start are cut.
    whole = waveform.place(burst(tk), t0, 0.25, FS, N)
    np.testing.assert_array_equal(whole[: int(0.75 * FS)], burst(tk)[int(0.25 * FS) : int(0.25 * FS) + 1536])


def test_projection_delays_each_detector_by_its_light_travel_time():
    h = waveform.render_injection(PARAMS, FS, N)
    assert h.shape == (3, N)
    t_gps = PARAMS.gps_time + PARAMS.tc
    for row, det in enumerate(detectors.NETWORK):
        delay = detectors.time_delay_from_geocenter(det, PARAMS.ra, PARAMS.dec, t_gps)
        fp, fc = detectors.antenna_pattern(det, PARAMS.ra, PARAMS.dec, PARAMS.psi, t_gps)
        hp, hc, t0 = waveform.polarizations(PARAMS, FS)
        expected = waveform.place(fp * hp + fc * hc, t0, PARAMS.tc + delay, FS, N)
        np.testing.assert_array_equal(h[row], expected)
        assert abs(np.argmax(np.abs(h[row])) / FS - (PARAMS.tc + delay)) < 0.01
    # From an injections.csv row (strings) the same strain comes back bit for bit.
    row = {k: repr(v) if isinstance(v, float) else v for k, v in PARAMS.__dict__.items()}
    np.testing.assert_array_equal(waveform.render_injection(row), h)
