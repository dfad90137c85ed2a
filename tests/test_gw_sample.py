"""Tests of the G2Net sample generator: noise PSD, chirp physics, antenna patterns, SNR and file layout."""

from __future__ import annotations

import csv
import math
import os
import re

import numpy as np
import pytest
from scipy import signal as scipy_signal

from transforms.recipes.g2net import detectors, psd_models
from transforms.recipes.g2net import sample as gw_sample

FS = 2048.0
N = 4096
GM_SUN_SI = 1.32712440018e20  # m^3 s^-2
C_SI = 299_792_458.0
MPC_M = 3.0856775814913673e22


def _read_csv(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _direct_snr(h: np.ndarray, psd: np.ndarray, f_low: float = 20.0) -> np.ndarray:
    """Optimal SNR per row from the definition, independent of gw_sample.inner_product."""
    freqs = np.arange(N // 2 + 1) * FS / N
    spectrum = np.fft.rfft(h, axis=-1) / FS
    keep = freqs >= f_low
    return np.sqrt(4.0 * (FS / N) * np.sum(np.abs(spectrum[:, keep]) ** 2 / psd[:, keep], axis=-1))


def _design_psds() -> np.ndarray:
    freqs = np.fft.rfftfreq(N, 1.0 / FS)
    return np.stack([psd_models.design_psd(det, freqs) for det in ("H1", "L1", "V1")])


# ------------------------------------------------------------------------------------------------ PSD models


def test_design_asd_at_100hz_is_a_few_1e_24():
    asd = np.sqrt([psd_models.design_psd(det, np.array([100.0]))[0] for det in ("H1", "L1", "V1")])
    assert np.all((asd > 1e-24) & (asd < 1e-23)), asd
    assert asd[0] == asd[1]


def test_design_psd_is_held_below_the_cutoff_and_finite_at_dc():
    for det in ("H1", "V1"):
        low = psd_models.design_psd(det, np.array([0.0, 3.0, 10.0]))
        assert np.all(np.isfinite(low))
        np.testing.assert_array_equal(low, np.full(3, low[-1]))
        assert psd_models.design_psd(det, np.array([11.0]))[0] < low[-1]


def test_design_psd_rejects_unknown_detector():
    with pytest.raises(ValueError, match="K1"):
        psd_models.design_psd("K1", np.array([100.0]))


# ------------------------------------------------------------------------------------------------ noise


@pytest.mark.parametrize("detector", ["H1", "V1"])
def test_colored_noise_matches_design_psd(detector):
    rng = np.random.default_rng(20240601)
    psd_fn = psd_models.design_psd_fn(detector)
    noise = np.stack([gw_sample.colored_noise(psd_fn, N, FS, rng=rng) for _ in range(300)])
    assert noise.shape == (300, N) and noise.dtype == np.float64

    freqs, welch = scipy_signal.welch(noise, fs=FS, nperseg=1024, axis=-1)
    band = (freqs >= 20.0) & (freqs <= 500.0)
    ratio = welch.mean(axis=0)[band] / psd_fn(freqs[band])
    # ~2100 averaged Hann segments: ~2.5 % scatter per 2-Hz bin, 0.2 % on the band mean.
    assert np.all(np.abs(ratio - 1.0) < 0.12), (ratio.min(), ratio.max())
    assert abs(ratio.mean() - 1.0) < 0.02, ratio.mean()

    # Physical scale: the strain std is set by the < 20 Hz band, ~7e-22 (H1) to ~9e-22 (V1).
    assert 3e-22 < noise.std() < 1.5e-21, noise.std()


def test_colored_noise_is_not_periodic_and_reproducible():
    psd_fn = psd_models.design_psd_fn("L1")
    a = gw_sample.colored_noise(psd_fn, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, gw_sample.colored_noise(psd_fn, rng=np.random.default_rng(3)))

    def wrap_jump_over_step(oversample: int) -> float:
        rng = np.random.default_rng(4)
        x = np.stack([gw_sample.colored_noise(psd_fn, rng=rng, oversample=oversample) for _ in range(200)])
        return float(np.sqrt(np.mean((x[:, 0] - x[:, -1]) ** 2) / np.mean(np.diff(x, axis=1) ** 2)))

    # A periodic draw joins end-to-start like any two neighbouring samples; the cropped draw does not.
    assert wrap_jump_over_step(1) < 1.5
    assert wrap_jump_over_step(4) > 1.7


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


def _face_on(**overrides) -> gw_sample.SourceParams:
    values = dict(m1=30.0, m2=25.0, ra=1.0, dec=0.2, psi=0.3, inclination=0.0, phase=0.5, tc=1.5, gmst=0.0)
    values.update(distance_mpc=400.0)
    values.update(overrides)
    return gw_sample.SourceParams(**values)


def test_chirp_amplitude_and_frequency_follow_the_newtonian_formulas():
    params = _face_on()
    t = np.arange(N) / FS
    hplus, hcross = gw_sample.inspiral_polarizations(t, params)
    mc_s = GM_SUN_SI * gw_sample.chirp_mass(30.0, 25.0) / C_SI**3
    tau = params.tc - t
    f_isco = C_SI**3 / (6**1.5 * np.pi * GM_SUN_SI * 55.0)
    tau_isco = 5 / 256 * (np.pi * f_isco) ** (-8 / 3) * mc_s ** (-5 / 3)
    tau_low = 5 / 256 * (np.pi * 20.0) ** (-8 / 3) * mc_s ** (-5 / 3)
    assert 0.5 < tau_low < params.tc  # the 20 Hz start is inside the window
    # Past the 0.1-s taper-on, before the two-cycle taper-off.
    untapered = (tau < tau_low - 0.11) & (tau > tau_isco + 2.5 / f_isco)
    freq = (5 / (256 * tau[untapered])) ** 0.375 * mc_s**-0.625 / np.pi
    amp = 4 * (GM_SUN_SI * gw_sample.chirp_mass(30.0, 25.0) / C_SI**2) ** (5 / 3)
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
    h = gw_sample.render_injection(params)
    assert h.shape == (3, N) and h.dtype == np.float64
    power = np.abs(np.fft.rfft(h, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(N, 1 / FS)
    f_isco = gw_sample.isco_frequency(32.0)
    inside = (freqs >= 15.0) & (freqs <= 1.3 * f_isco)
    assert power[:, inside].sum() / power.sum() > 0.99


def test_detector_delay_shifts_the_waveform():
    params = _face_on()
    h = gw_sample.render_injection(params)
    delays = [
        float(detectors.time_delay_from_geocenter(d, params.ra, params.dec, params.gmst)) for d in ("H1", "L1", "V1")
    ]
    # The last non-zero sample of each row moves with the detector's delay.
    ends = np.array([np.nonzero(row)[0].max() for row in h]) / FS
    np.testing.assert_allclose(ends - ends[0], np.array(delays) - delays[0], atol=1.5 / FS)


# ------------------------------------------------------------------------------------------------ SNR


def test_draw_source_hits_its_target_snr():
    spec = gw_sample.SampleSpec(snr_range=(8.0, 8.0))
    params, snrs = gw_sample.draw_source(np.random.default_rng(2), spec)
    h = gw_sample.render_injection(params)
    direct = _direct_snr(h, _design_psds())
    np.testing.assert_allclose(direct, snrs, rtol=1e-10)
    assert math.sqrt(np.sum(direct**2)) == pytest.approx(8.0, rel=1e-10)
    assert 10.0 <= params.m2 <= params.m1 <= 50.0


def test_matched_filter_recovers_injected_snr():
    rng = np.random.default_rng(99)
    params, snrs = gw_sample.draw_source(rng, gw_sample.SampleSpec(snr_range=(10.0, 10.0)))
    h = gw_sample.render_injection(params)
    psd = _design_psds()
    hh = float(np.sum(gw_sample.inner_product(h, h, psd)))
    stats = np.array(
        [np.sum(gw_sample.inner_product(gw_sample.network_noise(rng) + h, h, psd)) / math.sqrt(hh) for _ in range(400)]
    )
    assert math.sqrt(hh) == pytest.approx(10.0, rel=1e-10)
    # Unit-variance Gaussian around the SNR for noise with the design PSD (a little more: the 2-s crop leaks
    # sub-20-Hz power upwards, ~+7 % in std).
    assert abs(stats.mean() - 10.0) < 4 * stats.std() / math.sqrt(stats.size), stats.mean()
    assert 0.9 < stats.std() < 1.25, stats.std()


# ------------------------------------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def grouped_sample(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("g2net"))
    summary = gw_sample.write_g2net_sample(out, n=40, seed=17, signals_per_source=3)
    return out, summary


def test_layout_matches_kaggle(grouped_sample):
    out, summary = grouped_sample
    header, labels = _read_csv(os.path.join(out, "training_labels.csv"))
    assert header == ["id", "target", "source_id"]
    assert len(labels) == 40 == summary["n"]
    ids = [row["id"] for row in labels]
    assert len(set(ids)) == 40 and all(re.fullmatch(r"[0-9a-f]{10}", i) for i in ids)
    assert sum(int(row["target"]) for row in labels) == 20 == summary["positives"]
    for sample_id in ids:
        path = os.path.join(out, "train", sample_id[0], sample_id[1], sample_id[2], f"{sample_id}.npy")
        strain = np.load(path)
        assert strain.dtype == np.float64 and strain.shape == (3, 4096)
        assert 1e-22 < strain.std() < 5e-21
    npys = [f for _, _, files in os.walk(os.path.join(out, "train")) for f in files]
    assert len(npys) == 40 and all(f.endswith(".npy") for f in npys)


def test_truth_table_and_groups(grouped_sample):
    out, summary = grouped_sample
    header, rows = _read_csv(os.path.join(out, "injections.csv"))
    assert header == list(gw_sample.INJECTION_COLUMNS)
    _, labels = _read_csv(os.path.join(out, "training_labels.csv"))
    assert [(r["id"], r["target"], r["source_id"]) for r in rows] == [
        (r["id"], r["target"], r["source_id"]) for r in labels
    ]
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["source_id"], []).append(row)
    positive_groups = [g for g in groups.values() if g[0]["target"] == "1"]
    assert sorted(len(g) for g in positive_groups) == [2] + [3] * 6  # 20 positives dealt 3 per source
    assert summary["sources"] == 7
    psd = _design_psds()
    for index, row in enumerate(rows):
        if row["target"] == "0":
            assert row["source_id"] == row["id"] and float(row["snr"]) == 0.0 and row["m1"] == ""
            continue
        group = groups[row["source_id"]]
        assert all(r["target"] == "1" for r in group)
        assert row["source_id"] == group[0]["id"]  # named after its first sample
        signal = gw_sample.render_injection(row)
        np.testing.assert_array_equal(signal, gw_sample.render_injection(group[0]))
        # Optimal SNR recomputed from the rendered signal equals the truth table.
        direct = _direct_snr(signal, psd)
        np.testing.assert_allclose(direct, [float(row[c]) for c in ("snr_h1", "snr_l1", "snr_v1")], rtol=1e-9)
        assert math.sqrt(np.sum(direct**2)) == pytest.approx(float(row["snr"]), rel=1e-9)
        assert 4.0 <= float(row["snr"]) <= 20.0 and 1.2 <= float(row["tc"]) <= 1.8
        # The file is this sample's noise plus exactly the rendered signal.
        sid = row["id"]
        strain = np.load(os.path.join(out, "train", sid[0], sid[1], sid[2], f"{sid}.npy"))
        np.testing.assert_allclose(strain - gw_sample.make_noise(17, index), signal, rtol=0, atol=1e-30)


def _tree_bytes(root: str) -> dict[str, bytes]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = handle.read()
    return out


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        gw_sample.write_g2net_sample(str(tmp_path / name), n=12, seed=seed)
    a, b, c = (_tree_bytes(str(tmp_path / name)) for name in "abc")
    assert len(a) == 12 + 2 and a == b
    assert a["training_labels.csv"] != c["training_labels.csv"]
    assert not (set(a) & set(c)) - {"training_labels.csv", "injections.csv"}


def test_refuses_to_overwrite_without_flag(tmp_path):
    gw_sample.write_g2net_sample(str(tmp_path), n=4, seed=1)
    with pytest.raises(FileExistsError):
        gw_sample.write_g2net_sample(str(tmp_path), n=4, seed=2)
    gw_sample.write_g2net_sample(str(tmp_path), n=4, seed=2, overwrite=True)
    npys = [f for _, _, files in os.walk(tmp_path / "train") for f in files]
    assert len(npys) == 4


def test_plan_is_parallel_safe_and_balanced():
    plans = gw_sample.plan_samples(1001, seed=3, signals_per_source=1, positive_fraction=0.5)
    assert sum(p.target for p in plans) == 500
    assert all(p.source_id == p.id for p in plans)
    # Sample noise depends only on (seed, index): drawing it out of order changes nothing.
    np.testing.assert_array_equal(gw_sample.make_noise(3, 7), gw_sample.make_noise(3, 7))
    assert not np.array_equal(gw_sample.make_noise(3, 7), gw_sample.make_noise(3, 8))
