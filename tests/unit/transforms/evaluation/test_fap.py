"""Low-FAP detection statistics: binomial intervals against hand values and scipy, the refusal of a FAP the
background cannot resolve, efficiencies at the noise thresholds, and the sensitive volume of injections drawn
uniform in SNR against the analytic volume of a step-function search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transforms.evaluation import fap


@pytest.mark.parametrize(
    ("k", "n", "method", "expected"),
    [
        # Clopper-Pearson: [beta.ppf(0.025, k, n-k+1), beta.ppf(0.975, k+1, n-k)]; k = 0: upper 1 - 0.025^(1/n).
        (0, 10, "clopper_pearson", (0.0, 1.0 - 0.025 ** (1 / 10))),
        (5, 10, "clopper_pearson", (0.187086, 0.812914)),
        (10, 10, "clopper_pearson", (0.025 ** (1 / 10), 1.0)),
        # Wilson score interval, 5/10: centre 0.5, half width z sqrt(0.025 + z^2/400) / (1 + z^2/10).
        (5, 10, "wilson", (0.236593, 0.763407)),
        (0, 10, "wilson", (0.0, 0.277531)),
    ],
)
def test_binomial_interval_hand_values(k, n, method, expected):
    low, high = fap.binomial_interval(k, n, method=method)
    assert low == pytest.approx(expected[0], abs=2e-6)
    assert high == pytest.approx(expected[1], abs=2e-6)


@pytest.mark.parametrize("method", ["clopper_pearson", "wilson"])
@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 3), (10, 20000), (37, 400), (399, 400)])
def test_binomial_interval_matches_scipy(k, n, method):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact" if method != "wilson" else "wilson")
    assert fap.binomial_interval(k, n, method=method) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_binomial_interval_refuses_nonsense():
    assert all(math.isnan(v) for v in fap.binomial_interval(0, 0))
    with pytest.raises(ValueError):
        fap.binomial_interval(3, 2)
    with pytest.raises(ValueError):
        fap.binomial_interval(1, 2, method="normal")


def test_unresolvable_fap_is_refused_with_the_smallest_supported_fap():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=2000)
    positives = rng.normal(3.0, 1.0, size=500)
    out = fap.detection_at_faps(noise, positives, faps=(1e-2, 1e-3, 1e-4))
    assert out["min_resolvable_fap"] == pytest.approx(10 / 2000)
    resolved = out["faps"]["0.01"]
    assert resolved["resolvable"] and resolved["false_alarms"] == 20
    assert "efficiency" in resolved and resolved["efficiency_interval"][0] < resolved["efficiency"]
    for key in ("0.001", "0.0001"):
        entry = out["faps"][key]
        assert entry["resolvable"] is False
        assert "efficiency" not in entry
        assert entry["min_resolvable_fap"] == pytest.approx(0.005)
        assert "0.005" in entry["reason"]


def test_ties_at_the_top_make_a_fap_unresolvable():
    """Saturated scores (many noise examples tied at 1.0) leave fewer than ten false alarms above a threshold."""
    noise = np.r_[np.linspace(0.0, 0.5, 1960), np.ones(40)]
    out = fap.detection_at_faps(noise, np.ones(5), faps=(1e-2,))
    assert out["faps"]["0.01"]["false_alarms"] == 0
    assert out["faps"]["0.01"]["resolvable"] is False


def test_efficiency_and_snr_curve_at_the_noise_threshold():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=10_000)
    snr = rng.uniform(4, 20, size=3000)
    positives = snr / 3.0 + rng.normal(size=snr.size)
    out = fap.detection_at_faps(noise, positives, snr, faps=(1e-2, 1e-3), bins=[4, 6, 8, 10, 12, 16, 20])
    for key, level in (("0.01", 1e-2), ("0.001", 1e-3)):
        entry = out["faps"][key]
        assert entry["resolvable"]
        threshold = entry["threshold"]
        assert np.sum(noise >= threshold) == entry["false_alarms"] == int(level * 10_000)
        assert entry["efficiency"] == pytest.approx(np.mean(positives >= threshold))
        low, high = entry["efficiency_interval"]
        assert low < entry["efficiency"] < high
        for row in entry["efficiency_vs_snr"]["bins"]:
            in_bin = (snr >= row["snr_low"]) & (snr < row["snr_high"] if row["snr_high"] < 20 else snr <= 20)
            assert row["n_detected"] == np.sum(positives[in_bin] >= threshold)
            assert row["interval"][0] <= row["efficiency"] <= row["interval"][1]
        assert 4 < entry["snr_at_50pct"] < entry["snr_at_90pct"] < 20
    assert out["faps"]["0.001"]["snr_at_50pct"] > out["faps"]["0.01"]["snr_at_50pct"]


def _snr_uniform_injections(rng, n, lo=4.0, hi=20.0):
    """Sources of amplitude A = rho * d (Mpc at SNR 1) with SNR uniform in [lo, hi], as the generator draws."""
    amplitude = rng.uniform(2000.0, 6000.0, size=n)
    rho = rng.uniform(lo, hi, size=n)
    return rho, amplitude / rho, amplitude


def test_sensitive_volume_of_a_step_search_matches_the_analytic_volume():
    """A search detecting every signal with SNR >= rho* reaches d = A / rho*: V = mean(4 pi / 3 (A / rho*)^3)."""
    rng = np.random.default_rng(2)
    rho, distance, amplitude = _snr_uniform_injections(rng, 400_000)
    for threshold in (6.0, 8.0, 12.0):
        got = fap.sensitive_volume(rho >= threshold, distance, rho, snr_range=(4.0, 20.0))
        expected = np.mean(4.0 * math.pi / 3.0 * (amplitude / threshold) ** 3)
        assert got["volume_mpc3"] == pytest.approx(expected, rel=0.01)
        assert got["distance_mpc"] == pytest.approx((3 * expected / (4 * math.pi)) ** (1 / 3), rel=0.005)


def test_distance_ratio_of_two_step_searches():
    """Thresholds at SNR 8 and 10: the first search sees 10/8 = 1.25 times as far."""
    rng = np.random.default_rng(3)
    rho, distance, _ = _snr_uniform_injections(rng, 200_000)
    noise = rng.normal(size=10_000)
    # Scores: +inf-like for detected, so both searches share the noise background; detection set by rho.
    a = fap.detection_at_faps(noise, np.where(rho >= 8, 100.0, -100.0), rho, distance, (1e-2,), snr_range=(4, 20))
    b = fap.detection_at_faps(noise, np.where(rho >= 10, 100.0, -100.0), rho, distance, (1e-2,), snr_range=(4, 20))
    ratio = fap.distance_ratio(a, b)["0.01"]
    assert ratio["distance_ratio"] == pytest.approx(1.25, rel=0.01)
    assert ratio["efficiency_ratio"] == pytest.approx(np.mean(rho >= 8) / np.mean(rho >= 10))


def test_uniform_in_volume_weights_count_detections():
    got = fap.sensitive_volume([True, False, True, True], [100.0, 200.0, 50.0, 400.0])
    assert got["volume_mpc3"] == pytest.approx(0.75 * 4 * math.pi / 3 * 400.0**3)


def test_false_alarm_rates_on_glitchy_noise_at_clean_thresholds():
    rng = np.random.default_rng(4)
    clean = rng.normal(size=10_000)
    glitchy = np.r_[rng.normal(size=900), rng.normal(4.0, 1.0, size=100)]  # 10 % of examples carry a loud glitch
    out = fap.false_alarm_rates(clean, glitchy, faps=(1e-2, 1e-3, 1e-4))
    assert out["0.0001"]["resolvable"] is False  # 1 clean false alarm in 10,000: needs 100,000 clean examples
    assert out["0.0001"]["min_resolvable_fap"] == pytest.approx(1e-3)
    for key in ("0.01", "0.001"):
        entry = out[key]
        assert entry["resolvable"] and entry["clean_false_alarms"] == int(float(key) * 10_000)
        assert entry["clean"] <= float(key)
        assert entry["other"] == pytest.approx(np.mean(glitchy >= entry["threshold"]))
        assert entry["ratio"] == pytest.approx(entry["other"] / entry["clean"])
        assert entry["ratio"] > 5
