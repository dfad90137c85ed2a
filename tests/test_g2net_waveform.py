"""Tests of the G2Net waveform: antenna patterns and delays, Newtonian-chirp physics, detector projection."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.recipes.g2net import detectors, waveform

FS = 2048.0
N = 4096
GM_SUN_SI = 1.32712440018e20  # m^3 s^-2
C_SI = 299_792_458.0
MPC_M = 3.0856775814913673e22


# ------------------------------------------------------------------------------------------------ detectors


@pytest.mark.parametrize("name", ["H1", "L1", "V1"])
def test_arm_vectors_are_orthonormal(name):
    det = detectors.DETECTORS[name]
    x, y = np.array(det.xarm), np.array(det.yarm)
    assert abs(np.linalg.norm(x) - 1.0) < 1e-9 and abs(np.linalg.norm(y) - 1.0) < 1e-9
    assert abs(x @ y) < 1e-6
    # The vertex is on the Earth's surface and the arms are (nearly) horizontal there.
    r = np.array(det.vertex)
    assert 6.35e6 < np.linalg.norm(r) < 6.39e6
    assert abs(x @ r) / np.linalg.norm(r) < 5e-3 and abs(y @ r) / np.linalg.norm(r) < 5e-3


def _random_sky(rng: np.random.Generator, n: int):
    return (
        rng.uniform(0, 2 * np.pi, n),
        np.arcsin(rng.uniform(-1, 1, n)),
        rng.uniform(0, np.pi, n),
        rng.uniform(0, 2 * np.pi, n),
    )


def test_antenna_pattern_bounds_and_polarization_rotation():
    ra, dec, psi, gmst = _random_sky(np.random.default_rng(11), 2000)
    for name in ("H1", "L1", "V1"):
        fplus, fcross = detectors.antenna_pattern(name, ra, dec, psi, gmst)
        power = fplus**2 + fcross**2
        assert fplus.shape == (2000,) and np.all(power <= 1.0 + 1e-9)
        assert power.max() > 0.9  # some sky positions are near-optimal
        # psi -> psi + pi/2 flips both signs; F+^2 + Fx^2 does not depend on psi.
        fp2, fc2 = detectors.antenna_pattern(name, ra, dec, psi + np.pi / 2, gmst)
        np.testing.assert_allclose(fp2, -fplus, atol=1e-12)
        np.testing.assert_allclose(fc2, -fcross, atol=1e-12)
        fp3, fc3 = detectors.antenna_pattern(name, ra, dec, psi + 0.3, gmst)
        np.testing.assert_allclose(fp3**2 + fc3**2, power, atol=1e-12)


@pytest.mark.parametrize("name", ["H1", "L1", "V1"])
def test_source_at_detector_zenith_is_optimal(name):
    det = detectors.DETECTORS[name]
    normal = np.cross(det.xarm, det.yarm)
    normal /= np.linalg.norm(normal)
    gmst = 1.234
    dec = np.arcsin(normal[2])
    ra = gmst + np.arctan2(normal[1], normal[0])  # Earth-fixed azimuth = ra - gmst
    for psi in (0.0, 0.4, 1.3):
        fplus, fcross = detectors.antenna_pattern(name, ra, dec, psi, gmst)
        assert abs(fplus**2 + fcross**2 - 1.0) < 1e-6


def test_antenna_pattern_matches_textbook_formula_for_a_polar_detector():
    polar = detectors.Detector("P", vertex=(0.0, 0.0, 6.4e6), xarm=(1.0, 0.0, 0.0), yarm=(0.0, 1.0, 0.0))
    ra, dec, psi, gmst = _random_sky(np.random.default_rng(5), 500)
    theta = np.pi / 2 - dec
    phi = ra - gmst
    # F+^2 + Fx^2 = (1 + cos^2 theta)^2 cos^2 2phi / 4 + cos^2 theta sin^2 2phi (Thorne 1987).
    expected = (1 + np.cos(theta) ** 2) ** 2 * np.cos(2 * phi) ** 2 / 4 + np.cos(theta) ** 2 * np.sin(2 * phi) ** 2
    fplus, fcross = detectors.antenna_pattern(polar, ra, dec, psi, gmst)
    np.testing.assert_allclose(fplus**2 + fcross**2, expected, atol=1e-12)


def test_time_delays():
    ra, dec, _, gmst = _random_sky(np.random.default_rng(7), 5000)
    d_h = detectors.time_delay_from_geocenter("H1", ra, dec, gmst)
    d_l = detectors.time_delay_from_geocenter("L1", ra, dec, gmst)
    assert np.all(np.abs(d_h - d_l) <= 10.02e-3)
    assert np.abs(d_h - d_l).max() > 9.0e-3
    assert np.all(np.abs(d_h) <= 6.4e6 / C_SI)

    # Source along the L1 -> H1 baseline: H1 sees it first, by the full 10.01 ms light time.
    r_h = np.array(detectors.DETECTORS["H1"].vertex)
    r_l = np.array(detectors.DETECTORS["L1"].vertex)
    n = (r_h - r_l) / np.linalg.norm(r_h - r_l)
    gmst0 = 0.7
    ra0, dec0 = gmst0 + np.arctan2(n[1], n[0]), np.arcsin(n[2])
    lag = detectors.time_delay_from_geocenter("H1", ra0, dec0, gmst0) - detectors.time_delay_from_geocenter(
        "L1", ra0, dec0, gmst0
    )
    assert lag == pytest.approx(-np.linalg.norm(r_h - r_l) / C_SI, rel=1e-9)
    assert lag == pytest.approx(-10.0128e-3, abs=2e-6)


# ------------------------------------------------------------------------------------------------ chirp


def _face_on(**overrides) -> waveform.SourceParams:
    values = dict(m1=30.0, m2=25.0, ra=1.0, dec=0.2, psi=0.3, inclination=0.0, phase=0.5, tc=1.5, gmst=0.0)
    values.update(distance_mpc=400.0)
    values.update(overrides)
    return waveform.SourceParams(**values)


def test_chirp_amplitude_and_frequency_follow_the_newtonian_formulas():
    params = _face_on()
    t = np.arange(N) / FS
    hplus, hcross = waveform.inspiral_polarizations(t, params)
    mc_s = GM_SUN_SI * waveform.chirp_mass(30.0, 25.0) / C_SI**3
    tau = params.tc - t
    f_isco = C_SI**3 / (6**1.5 * np.pi * GM_SUN_SI * 55.0)
    tau_isco = 5 / 256 * (np.pi * f_isco) ** (-8 / 3) * mc_s ** (-5 / 3)
    tau_low = 5 / 256 * (np.pi * 20.0) ** (-8 / 3) * mc_s ** (-5 / 3)
    assert 0.5 < tau_low < params.tc  # the 20 Hz start is inside the window
    # Past the 0.1-s taper-on, before the two-cycle taper-off.
    untapered = (tau < tau_low - 0.11) & (tau > tau_isco + 2.5 / f_isco)
    freq = (5 / (256 * tau[untapered])) ** 0.375 * mc_s**-0.625 / np.pi
    amp = 4 * (GM_SUN_SI * waveform.chirp_mass(30.0, 25.0) / C_SI**2) ** (5 / 3)
    amp *= (np.pi * freq / C_SI) ** (2 / 3) / (400.0 * MPC_M)
    # Face-on: h+ + i hx = A exp(i Phi) with |.| the amplitude and dPhi/dt = 2 pi f.
    complex_h = hplus + 1j * hcross
    np.testing.assert_allclose(np.abs(complex_h[untapered]), amp, rtol=1e-9)
    inst_freq = np.diff(np.unwrap(np.angle(complex_h))) * FS / (2 * np.pi)
    keep = untapered[:-1] & untapered[1:]
    tau_mid = params.tc - 0.5 * (t[:-1] + t[1:])[keep]
    f_mid = (5 / (256 * tau_mid)) ** 0.375 * mc_s**-0.625 / np.pi
    np.testing.assert_allclose(inst_freq[keep], f_mid, rtol=2e-3)
    # Nothing after the ISCO time, tapered to zero at the edges.
    assert np.all(hplus[tau < tau_isco] == 0.0)
    assert hplus[0] == 0.0 and abs(hplus[np.argmax(tau < tau_isco) - 1]) < 1e-2 * amp.max()
    assert 1e-22 < amp.max() < 1e-20


def test_signal_power_lies_between_f_low_and_isco():
    params = _face_on(m1=20.0, m2=12.0, inclination=0.8)
    h = waveform.render_injection(params)
    assert h.shape == (3, N) and h.dtype == np.float64
    power = np.abs(np.fft.rfft(h, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(N, 1 / FS)
    f_isco = waveform.isco_frequency(32.0)
    inside = (freqs >= 15.0) & (freqs <= 1.3 * f_isco)
    assert power[:, inside].sum() / power.sum() > 0.99


def test_detector_delay_shifts_the_waveform():
    params = _face_on()
    h = waveform.render_injection(params)
    delays = [
        float(detectors.time_delay_from_geocenter(d, params.ra, params.dec, params.gmst)) for d in ("H1", "L1", "V1")
    ]
    # The last non-zero sample of each row moves with the detector's delay.
    ends = np.array([np.nonzero(row)[0].max() for row in h]) / FS
    np.testing.assert_allclose(ends - ends[0], np.array(delays) - delays[0], atol=1.5 / FS)
