"""Tests of the G2Net noise model: PyCBC PSD curves (``psd_models``) and coloured Gaussian noise (``noise``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as scipy_signal

from transforms.recipes.g2net import noise as gw_noise
from transforms.recipes.g2net import psd_models

FS = 2048.0
N = 4096


# ------------------------------------------------------------------------------------------------ PSD models


@pytest.mark.parametrize("model", ["design", "o3"])
def test_psd_is_pycbc_curve_held_below_cutoff_and_at_nyquist(model):
    import pycbc.psd

    for det in ("H1", "L1", "V1"):
        psd = psd_models.detector_psd(det, N, FS, model)
        oracle = pycbc.psd.from_string(psd_models.psd_name(det, model), N // 2 + 1, FS / N, 10.0).numpy()
        k0 = 20  # 10 Hz on the 0.5 Hz grid
        np.testing.assert_array_equal(psd[k0:-1], oracle[k0:-1])
        np.testing.assert_array_equal(psd[:k0], np.full(k0, oracle[k0]))
        assert psd[-1] == psd[-2] and np.all(psd > 0) and not psd.flags.writeable
    asd = np.sqrt(psd_models.network_psd(("H1", "L1", "V1"), N, FS, model)[:, 200])  # 100 Hz
    assert np.all((asd > 1e-24) & (asd < 2e-23)), asd


def test_models_differ_and_unknown_names_are_refused():
    design = psd_models.detector_psd("H1", N, FS, "design")
    o3 = psd_models.detector_psd("H1", N, FS, "o3")
    assert o3[200] > 1.5 * design[200]  # O3 was less sensitive than design at 100 Hz
    with pytest.raises(ValueError, match="K1"):
        psd_models.detector_psd("K1", N, FS)
    with pytest.raises(ValueError, match="o5"):
        psd_models.detector_psd("H1", N, FS, "o5")


# ------------------------------------------------------------------------------------------------ noise


@pytest.mark.parametrize("model", ["design", "o3"])
def test_generated_noise_psd_matches_the_curve(model):
    rng = np.random.default_rng(20240601)
    noise = np.stack([gw_noise.network_noise(rng, model=model) for _ in range(150)])
    assert noise.shape == (150, 3, N) and noise.dtype == np.float64

    freqs, welch = scipy_signal.welch(noise, fs=FS, nperseg=1024, axis=-1)
    curve = psd_models.network_psd(("H1", "L1", "V1"), 1024, FS, model)
    band = (freqs >= 20.0) & (freqs <= 500.0)
    ratio = welch.mean(axis=0)[:, band] / curve[:, band]
    # ~1050 averaged Hann segments per detector: ~3.5 % scatter per 2-Hz bin, 0.3 % on the band median. The O3
    # curves carry narrow lines (power mains, violin modes) that a 2-Hz Welch bin smears: those few bins are off.
    assert np.quantile(np.abs(ratio - 1.0), 0.97) < 0.12, np.quantile(np.abs(ratio - 1.0), 0.97)
    assert np.all(np.abs(np.median(ratio, axis=-1) - 1.0) < 0.02), np.median(ratio, axis=-1)
    if model == "design":  # smooth curves: every bin
        assert np.all(np.abs(ratio - 1.0) < 0.15), (ratio.min(), ratio.max())
    # Physical scale: the strain std is set by the < 20 Hz band (held at the 10 Hz level).
    assert 1e-22 < noise.std() < (5e-21 if model == "design" else 3e-20), noise.std()


def test_noise_is_not_periodic_and_reproducible():
    a = gw_noise.network_noise(np.random.default_rng(3))
    np.testing.assert_array_equal(a, gw_noise.network_noise(np.random.default_rng(3)))

    def wrap_jump_over_step(oversample: int) -> float:
        rng = np.random.default_rng(4)
        x = np.stack([gw_noise.network_noise(rng, oversample=oversample)[1] for _ in range(200)])
        return float(np.sqrt(np.mean((x[:, 0] - x[:, -1]) ** 2) / np.mean(np.diff(x, axis=1) ** 2)))

    # A periodic draw joins end-to-start like any two neighbouring samples; the cropped draw does not.
    assert wrap_jump_over_step(1) < 1.5
    assert wrap_jump_over_step(4) > 1.7
