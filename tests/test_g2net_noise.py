"""Tests of the G2Net noise model: design PSDs and coloured Gaussian noise (``transforms.recipes.g2net.noise``)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import signal as scipy_signal

from transforms.recipes.g2net import noise as gw_noise
from transforms.recipes.g2net import psd_models

FS = 2048.0
N = 4096


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
    psd_fn = functools.partial(psd_models.design_psd, detector)
    noise = np.stack([gw_noise.colored_noise(psd_fn, N, FS, rng=rng) for _ in range(300)])
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
    psd_fn = functools.partial(psd_models.design_psd, "L1")
    a = gw_noise.colored_noise(psd_fn, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, gw_noise.colored_noise(psd_fn, rng=np.random.default_rng(3)))

    def wrap_jump_over_step(oversample: int) -> float:
        rng = np.random.default_rng(4)
        x = np.stack([gw_noise.colored_noise(psd_fn, rng=rng, oversample=oversample) for _ in range(200)])
        return float(np.sqrt(np.mean((x[:, 0] - x[:, -1]) ** 2) / np.mean(np.diff(x, axis=1) ** 2)))

    # A periodic draw joins end-to-start like any two neighbouring samples; the cropped draw does not.
    assert wrap_jump_over_step(1) < 1.5
    assert wrap_jump_over_step(4) > 1.7
