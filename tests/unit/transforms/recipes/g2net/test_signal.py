"""Tests for transforms.recipes.g2net.signal against scipy/numpy oracles, hand values, and physical-scale (1e-22)
data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from transforms.recipes.g2net import signal as sig

FS = 2048.0
BAND = (20.0, 500.0)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _colored_noise_freq_domain(rng, n_channels, n, fs, psd_fn):
    """Gaussian noise whose one-sided PSD is psd_fn(f) on the rfft grid (circular synthesis, float64)."""
    white = rng.standard_normal((n_channels, n))
    freqs = sig.rfft_freqs(n, fs)
    # E|rfft(white)_k|^2 = n; E|rfft(x)_k|^2 must be n * fs * S_k / 2.
    spec = np.fft.rfft(white, axis=-1) * np.sqrt(fs * psd_fn(freqs) / 2.0)
    return np.fft.irfft(spec, n=n, axis=-1)


def _aligo_like_psd(f, scale=1e-22):
    """Steep, strain-scale one-sided PSD (1/Hz) shaped like a detector's: ~scale**2 / Hz at 100 Hz."""
    f = np.maximum(f, 10.0)
    return (scale**2) * ((f / 30.0) ** -8 + 1.0 + (f / 300.0) ** 2)


# Bandpass -------------------------------------------------------------------------------------------------


def test_butter_sos_matches_scipy_and_is_cached_read_only():
    sos = sig.butter_bandpass_sos(20.0, 500.0, FS, 8)
    expected = scipy.signal.butter(8, [20.0, 500.0], btype="bandpass", fs=FS, output="sos")
    np.testing.assert_array_equal(sos, expected)
    assert sos.shape == (8, 6)
    assert sos.dtype == np.float64
    assert not sos.flags.writeable
    assert sig.butter_bandpass_sos(20.0, 500.0, FS, 8) is sos
    assert sig.butter_bandpass_sos() is sos
    assert sig.butter_bandpass_sos(low_hz=20, high_hz=500, fs=2048, order=8) is sos
    assert sig.butter_bandpass_sos(20.0, 400.0, FS, 8) is not sos


@pytest.mark.parametrize(
    "low, high, fs, order",
    [(0.0, 500.0, FS, 8), (500.0, 20.0, FS, 8), (20.0, 1024.0, FS, 8), (20, 500, FS, 0)],
)
def test_butter_sos_rejects_bad_parameters(low, high, fs, order):
    with pytest.raises(ValueError):
        sig.butter_bandpass_sos(low, high, fs, order)


@pytest.mark.parametrize("low, high, order", [(20.0, 500.0, 8), (35.0, 350.0, 4)])
def test_bandpass_matches_scipy_sosfiltfilt(low, high, order):
    x = _rng(1).standard_normal((3, 4096))
    sos = scipy.signal.butter(order, [low, high], btype="bandpass", fs=FS, output="sos")
    expected = scipy.signal.sosfiltfilt(sos, x, axis=-1)
    got = sig.bandpass(x, FS, low, high, order)
    assert got.dtype == np.float64
    assert got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14 * np.max(np.abs(expected)))


def test_bandpass_1d_and_per_channel():
    x = _rng(2).standard_normal((3, 2048))
    multi = sig.bandpass(x)
    for c in range(3):
        one = sig.bandpass(x[c])
        assert one.shape == (2048,)
        np.testing.assert_allclose(multi[c], one, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "freq_hz, lo, hi",
    [(100.0, 0.999, 1.001), (300.0, 0.999, 1.001), (5.0, 0.0, 1e-6), (900.0, 0.0, 1e-6)],
)
def test_bandpass_frequency_response(freq_hz, lo, hi):
    t = np.arange(8192) / FS
    y = sig.bandpass(np.sin(2 * np.pi * freq_hz * t))
    # Steady-state amplitude away from the edges.
    amplitude = np.max(np.abs(y[2048:-2048]))
    assert lo <= amplitude <= hi, amplitude


def test_bandpass_is_zero_phase():
    t = np.arange(8192) / FS
    x = np.sin(2 * np.pi * 100.0 * t)
    y = sig.bandpass(x)
    # A one-sample delay at 100 Hz would give an error of ~0.3.
    assert np.max(np.abs(y[2048:-2048] - x[2048:-2048])) < 2e-3

    impulse = np.zeros(4096)
    impulse[2000] = 1.0
    h = sig.bandpass(impulse)
    assert int(np.argmax(np.abs(h))) == 2000
    np.testing.assert_allclose(h[2000 - 300 : 2000][::-1], h[2001 : 2001 + 300], atol=1e-12)


def test_bandpass_at_strain_scale_float64_and_float32():
    scale = 1e-22
    x = _rng(3).standard_normal((3, 4096))
    reference = sig.bandpass(x)
    scaled = sig.bandpass(x * scale)
    assert scaled.dtype == np.float64
    np.testing.assert_allclose(scaled / scale, reference, rtol=1e-9, atol=1e-12 * np.max(np.abs(reference)))

    x32 = (x * scale).astype(np.float32)
    got32 = sig.bandpass(x32)
    assert got32.dtype == np.float64
    expected32 = sig.bandpass(x32.astype(np.float64) / scale) * scale
    np.testing.assert_allclose(got32, expected32, rtol=1e-9, atol=1e-12 * np.max(np.abs(expected32)))
    assert 0.1 * scale < np.std(got32) < 10 * scale


# Tukey window ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, alpha", [(4096, 0.1), (101, 0.5), (10, 0.25), (1, 0.1)])
def test_tukey_matches_scipy(n, alpha):
    w = sig.tukey_window(n, alpha)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, scipy.signal.windows.tukey(n, alpha, sym=True), rtol=0, atol=1e-15)


def test_tukey_hand_values():
    np.testing.assert_array_equal(sig.tukey_window(16, 0.0), np.ones(16))
    np.testing.assert_allclose(sig.tukey_window(5, 1.0), [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-15)
    np.testing.assert_allclose(sig.tukey_window(64, 1.0), scipy.signal.windows.hann(64, sym=True), atol=1e-15)
    np.testing.assert_allclose(sig.tukey_window(9, 0.5), [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0], atol=1e-15)


def test_tukey_rejects_bad_alpha_and_apply_tukey():
    with pytest.raises(ValueError):
        sig.tukey_window(16, 1.5)
    with pytest.raises(ValueError):
        sig.tukey_window(0, 0.1)
    x = _rng(4).standard_normal((3, 512)).astype(np.float32)
    got = sig.apply_tukey(x, 0.2)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, x.astype(np.float64) * scipy.signal.windows.tukey(512, 0.2), atol=1e-15)


# PSD ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nperseg": 256},
        {"nperseg": 512, "noverlap": 384, "window": "hamming"},
        {"nperseg": 256, "detrend": "constant"},
        {},
    ],
)
def test_welch_psd_matches_scipy(kwargs):
    x = _rng(5).standard_normal((3, 4096)) + 0.3
    freqs, psd = sig.welch_psd(x, FS, **kwargs)
    scipy_kwargs = {"window": "hann", "detrend": False, "nperseg": 4096, **kwargs}
    f_ref, p_ref = scipy.signal.welch(x, fs=FS, axis=-1, **scipy_kwargs)
    assert psd.dtype == np.float64
    np.testing.assert_array_equal(freqs, f_ref)
    np.testing.assert_allclose(psd, p_ref, rtol=1e-12, atol=1e-12 * np.max(p_ref))
    one_f, one_p = sig.welch_psd(x[1], FS, **kwargs)
    np.testing.assert_allclose(one_p, psd[1], rtol=1e-12, atol=1e-12 * np.max(p_ref))


def test_welch_default_is_full_length_on_rfft_grid():
    x = _rng(6).standard_normal((2, 1000))
    freqs, psd = sig.welch_psd(x, FS)
    assert psd.shape == (2, 501)
    np.testing.assert_allclose(freqs, np.fft.rfftfreq(1000, 1.0 / FS), rtol=1e-15)


@pytest.mark.parametrize("n", [4096, 4095])
@pytest.mark.parametrize("window", ["hann", "boxcar", ("tukey", 0.1)])
def test_periodogram_psd_matches_scipy(n, window):
    x = _rng(7).standard_normal((3, n)) + 0.5
    freqs, psd = sig.periodogram_psd(x, FS, window)
    f_ref, p_ref = scipy.signal.periodogram(x, fs=FS, window=window, detrend=False, axis=-1)
    np.testing.assert_allclose(freqs, f_ref, rtol=1e-15)
    np.testing.assert_allclose(psd, p_ref, rtol=1e-12, atol=1e-12 * np.max(p_ref))
    _, p_welch = scipy.signal.welch(x, fs=FS, window=window, nperseg=n, detrend=False, axis=-1)
    np.testing.assert_allclose(psd, p_welch, rtol=1e-12, atol=1e-12 * np.max(p_welch))
    _, p_ours = sig.welch_psd(x, FS, window=window)
    np.testing.assert_allclose(psd, p_ours, rtol=1e-12, atol=1e-12 * np.max(p_ours))


def test_periodogram_psd_window_array_and_shape_check():
    x = _rng(8).standard_normal(1024)
    w = scipy.signal.windows.tukey(1024, 0.3)
    _, psd = sig.periodogram_psd(x, FS, w)
    _, ref = scipy.signal.periodogram(x, fs=FS, window=w, detrend=False)
    np.testing.assert_allclose(psd, ref, rtol=1e-12, atol=1e-12 * np.max(ref))
    with pytest.raises(ValueError, match="window must have shape"):
        sig.periodogram_psd(x, FS, w[:-1])


@pytest.mark.parametrize("scale", [1e-21, 1e-22, 1e-23])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_white_noise_psd_level_at_strain_scale(scale, dtype):
    x = (_rng(9).standard_normal((4, 16384)) * scale).astype(dtype)
    x64 = x.astype(np.float64)
    expected_level = 2.0 * np.var(x64) / FS
    for fn in (sig.periodogram_psd, sig.welch_psd):
        _, psd = fn(x, FS)
        assert psd.dtype == np.float64
        # Exclude DC and Nyquist (their expectation is the same, but they are single real bins).
        level = np.mean(psd[:, 1:-1])
        assert abs(level / expected_level - 1.0) < 0.02, (fn.__name__, level, expected_level)
        assert abs(level / (2.0 * scale**2 / FS) - 1.0) < 0.03
        # float32 input gives exactly the float64 result on the same values.
        _, psd64 = fn(x64, FS)
        np.testing.assert_allclose(psd, psd64, rtol=1e-12, atol=0)
    if dtype is np.float32 and scale == 1e-23:
        # The hazard is real: the same power formed in float32 flushes to (sub)normal garbage.
        naive = float(np.mean(x * x, dtype=np.float32))
        assert abs(naive / scale**2 - 1.0) > 0.5


# Whitening ------------------------------------------------------------------------------------------------


def test_whitening_norm_hand_values():
    # n = 4096 at 2048 Hz: 0.5 Hz bins, 20..500 Hz inclusive = bins 40..1000 = 961 bins, none DC/Nyquist.
    assert sig.whitening_norm(4096, FS, BAND) == pytest.approx(np.sqrt(2 * 4096 / (FS * 2 * 961)), rel=1e-14)
    # Full band with even n: W = 1 + 2 * (n/2 - 1) + 1 = n, so c = sqrt(2 / fs).
    assert sig.whitening_norm(4096, FS, (0.0, FS / 2)) == pytest.approx(np.sqrt(2.0 / FS), rel=1e-14)
    # Odd n has no Nyquist bin: W = 1 + 2 * (n - 1) / 2 = n.
    assert sig.whitening_norm(4095, FS, (0.0, FS / 2)) == pytest.approx(np.sqrt(2.0 / FS), rel=1e-14)


def test_whiten_full_band_white_noise_is_exact_rescale():
    # White noise of std s has one-sided PSD 2 s^2 / fs; whitening over the full band is exactly x / s.
    s = 3e-22
    x = _rng(10).standard_normal((2, 2048)) * s
    psd = np.full(1025, 2.0 * s**2 / FS)
    y = sig.whiten(x, psd, FS, band=(0.0, FS / 2))
    np.testing.assert_allclose(y, x / s, rtol=1e-10, atol=1e-12)


def test_whiten_colored_noise_unit_variance_flat_and_band_limited():
    n, n_channels = 16384, 8
    x = _colored_noise_freq_domain(_rng(11), n_channels, n, FS, _aligo_like_psd)
    assert 1e-24 < np.std(x) < 1e-18  # physical scale, strongly colored
    psd = _aligo_like_psd(sig.rfft_freqs(n, FS))
    y = sig.whiten(x, psd, FS, BAND)
    assert y.shape == x.shape
    assert y.dtype == np.float64
    # Documented definition: unit variance.
    assert abs(np.var(y) - 1.0) < 0.03, np.var(y)

    # Flat in band at the documented level 2 n / (fs W), zero out of band.
    freqs, p = sig.periodogram_psd(y, FS, window="boxcar")
    p_mean = np.mean(p, axis=0)
    mask = sig.band_mask(n, FS, BAND)
    level = 2.0 * n / (FS * 2.0 * np.count_nonzero(mask))
    for chunk in np.array_split(p_mean[mask], 8):
        assert abs(np.mean(chunk) / level - 1.0) < 0.08, np.mean(chunk) / level
    spec = np.abs(np.fft.rfft(y, axis=-1))
    assert np.max(spec[:, ~mask]) < 1e-10 * np.max(spec[:, mask])
    assert np.max(spec[:, mask]) > 0.0


def test_whiten_time_domain_ar1_noise_at_strain_scale():
    # Independent of the frequency-domain synthesis: AR(1) noise x[t] = a x[t-1] + e[t], e ~ N(0, s^2),
    # has one-sided PSD (2 s^2 / fs) / |1 - a exp(-2 pi i f / fs)|^2.
    a, s, n, n_channels, burn_in = 0.9, 1e-22, 16384, 8, 2000
    e = _rng(12).standard_normal((n_channels, n + burn_in)) * s
    x = scipy.signal.lfilter([1.0], [1.0, -a], e, axis=-1)[:, burn_in:]
    f = sig.rfft_freqs(n, FS)
    psd = (2.0 * s**2 / FS) / np.abs(1.0 - a * np.exp(-2j * np.pi * f / FS)) ** 2
    y = sig.whiten(x.astype(np.float32), psd, FS, BAND)
    assert abs(np.var(y) - 1.0) < 0.03, np.var(y)
    # Whitening by the wrong (white) PSD of the same total power does not give unit variance in band.
    y_wrong = sig.whiten(x, np.full_like(psd, 2.0 * np.var(x) / FS), FS, BAND)
    assert abs(np.var(y_wrong) - 1.0) > 0.2


def test_whiten_single_channel_and_shared_psd():
    n = 4096
    x = _colored_noise_freq_domain(_rng(13), 3, n, FS, _aligo_like_psd)
    psd = _aligo_like_psd(sig.rfft_freqs(n, FS))
    shared = sig.whiten(x, psd, FS)
    per_channel = sig.whiten(x, np.tile(psd, (3, 1)), FS)
    np.testing.assert_allclose(shared, per_channel, rtol=1e-12, atol=1e-14)
    one = sig.whiten(x[0], psd, FS)
    assert one.shape == (n,)
    np.testing.assert_allclose(one, shared[0], rtol=1e-12, atol=1e-14)


def test_whiten_ignores_nonpositive_psd_out_of_band():
    n = 2048
    x = _rng(14).standard_normal((2, n))
    psd = np.ones(n // 2 + 1)
    reference = sig.whiten(x, psd, FS)
    mask = sig.band_mask(n, FS, BAND)
    psd[~mask] = 0.0
    psd[-1] = -1.0
    got = sig.whiten(x, psd, FS)
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, reference)


@pytest.mark.parametrize(
    "x_shape, psd_shape",
    [((3, 2048), (1024,)), ((3, 2048), (2, 1025)), ((2048,), (1, 1025)), ((3, 2048), (3, 1025, 1))],
)
def test_whiten_rejects_bad_shapes(x_shape, psd_shape):
    with pytest.raises(ValueError, match="psd shape"):
        sig.whiten(np.ones(x_shape), np.ones(psd_shape), FS)


def test_whiten_rejects_3d_x():
    with pytest.raises(ValueError, match="expected x of shape"):
        sig.whiten(np.ones((2, 3, 2048)), np.ones(1025), FS)


@pytest.mark.parametrize("bad_value", [0.0, -1e-44, np.nan, np.inf])
def test_whiten_rejects_nonpositive_psd_in_band(bad_value):
    psd = np.ones((3, 1025))
    psd[1, 100] = bad_value  # 1 Hz bins: 100 Hz
    with pytest.raises(ValueError, match=r"finite and > 0 inside band .* first at 100 Hz"):
        sig.whiten(np.ones((3, 2048)), psd, FS)


# Moments, standardization, composed reference -------------------------------------------------------------


def test_channel_stats_and_moments_vs_numpy():
    x = _rng(15).standard_normal((3, 5000)) * np.array([[1.0], [2.0], [0.5]]) + np.array([[0.1], [-3.0], [7]])
    mean, std = sig.channel_stats(x)
    np.testing.assert_allclose(mean, np.mean(x, axis=1), rtol=1e-14)
    np.testing.assert_allclose(std, np.std(x, axis=1), rtol=1e-14)
    m1, m2 = sig.channel_moments(x)
    assert m1.shape == (3,) and m2.shape == (3,)
    np.testing.assert_allclose(m1, np.mean(x, axis=1), rtol=1e-14)
    np.testing.assert_allclose(m2, np.mean(x**2, axis=1), rtol=1e-14)
    mean2, std2 = sig.stats_from_moments(m1, m2)
    np.testing.assert_allclose(std2, std, rtol=1e-10)


def test_channel_moments_at_strain_scale_float32():
    s = 1e-23
    x32 = (_rng(16).standard_normal((3, 8192)) * s).astype(np.float32)
    _, mean_sq = sig.channel_moments(x32)
    assert mean_sq.dtype == np.float64
    np.testing.assert_allclose(mean_sq, np.mean(x32.astype(np.float64) ** 2, axis=1), rtol=1e-12)
    np.testing.assert_allclose(mean_sq / s**2, 1.0, atol=0.05)


def test_standardize():
    x = _rng(17).standard_normal((3, 4000)) * 5.0 + 2.0
    mean, std = sig.channel_stats(x)
    z = sig.standardize(x, mean, std)
    np.testing.assert_allclose(z, (x - mean[:, None]) / std[:, None], rtol=1e-14)
    np.testing.assert_allclose(np.mean(z, axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.std(z, axis=1), 1.0, rtol=1e-12)
    z1 = sig.standardize(x[0], mean[0], std[0])
    np.testing.assert_allclose(z1, z[0], rtol=1e-14)
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        sig.standardize(x, mean, np.array([1.0, 0.0, 1.0]))


def test_normalize_strain_equals_composition_and_explicit_formula():
    n = 4096
    x = sig.bandpass(_colored_noise_freq_domain(_rng(18), 3, n, FS, _aligo_like_psd))
    avg_psd = np.mean(sig.welch_psd(x, FS)[1], axis=0)
    mean = np.array([0.01, -0.02, 0.0])
    std = np.array([0.9, 1.1, 1.3])
    got = sig.normalize_strain(x, avg_psd, mean, std, fs=FS, band=BAND, tukey_alpha=0.1)
    assert got.shape == (3, n) and got.dtype == np.float64

    composed = sig.standardize(sig.apply_tukey(sig.whiten(x, avg_psd, FS, BAND), 0.1), mean, std)
    np.testing.assert_array_equal(got, composed)

    # Explicit formula with the hand-derived normalization c = sqrt(2 n / (fs * 2 * 961)).
    f = np.fft.rfftfreq(n, 1.0 / FS)
    keep = (f >= 20.0) & (f <= 500.0)
    c = np.sqrt(2.0 * n / (FS * 2.0 * 961))
    spec = np.where(keep, np.fft.rfft(x, axis=-1) * c / np.sqrt(avg_psd), 0.0)
    whitened = np.fft.irfft(spec, n=n, axis=-1) * scipy.signal.windows.tukey(n, 0.1)
    explicit = (whitened - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(got, explicit, rtol=1e-10, atol=1e-12)
    # Whitened + windowed bandpassed noise is O(1), not O(strain).
    assert 0.3 < np.std(got) < 3.0
