"""Detector noise and noise-weighted inner products of the G2Net sample generator: coloured noise, SNR.

Topic: the noise model and the SNR it defines (numpy; the PSDs come from ``pycbc.psd`` through
``transforms.recipes.g2net.psd_models``). Units: strain is dimensionless, sampled at ``fs`` Hz (default
``FS_HZ = 2048``); PSDs are one-sided, in 1/Hz, on ``rfftfreq(n, 1/fs)``, shape ``(..., n // 2 + 1)``; inner
products and SNRs are dimensionless. ``network_noise`` returns ``(n_detectors, n_samples)`` (rows H1, L1, V1);
``inner_product`` / ``optimal_snr`` reduce the last axis of ``(..., n)``.

* Noise: Gaussian, stationary, coloured by a PSD model of ``psd_models`` (``design``: aLIGO for H1/L1, AdVirgo
  for V1; ``o3``), drawn in the frequency domain on a 4x longer segment whose middle is kept, so the 2-s window
  is not periodic. Raw strain std is ~1e-21, set by the < 20 Hz band (held at the 10 Hz level).
* SNR: ``<a, b> = 4 df Re sum_{f >= f_low} A(f) B*(f) / S(f)`` with ``A = rfft(a) / fs`` (no window); the
  optimal SNR of ``h`` is ``sqrt(<h, h>)``, what ``pycbc.filter.sigma`` computes (tested against it).
"""

from __future__ import annotations

import math

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK
from transforms.recipes.g2net.psd_models import network_psd
from transforms.recipes.g2net.waveform import F_LOW_HZ, FS_HZ, N_SAMPLES


def inner_product(a: np.ndarray, b: np.ndarray, psd: np.ndarray, fs: float = FS_HZ, f_low: float = F_LOW_HZ):
    """Noise-weighted inner product ``<a, b> = 4 df Re sum_{f >= f_low} A(f) B*(f) / S(f)``, ``A = rfft(a) / fs``.

    ``a``, ``b``: (..., n) strain at ``fs`` Hz; ``psd``: one-sided PSD (1/Hz) on ``rfftfreq(n, 1/fs)``,
    broadcastable to (..., n//2 + 1). Returns (...) float64, dimensionless. No window is applied.
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    band = freqs >= f_low
    fa = np.fft.rfft(a, axis=-1)[..., band] / fs
    fb = np.fft.rfft(np.asarray(b, dtype=np.float64), axis=-1)[..., band] / fs
    weight = 1.0 / np.broadcast_to(np.asarray(psd, dtype=np.float64), fa.shape[:-1] + (freqs.size,))[..., band]
    return 4.0 * (fs / n) * np.sum((fa * fb.conj()).real * weight, axis=-1)


def optimal_snr(h: np.ndarray, psd: np.ndarray, fs: float = FS_HZ, f_low: float = F_LOW_HZ):
    """Optimal SNR ``sqrt(<h, h>)`` per row: ``h`` (..., n) strain, ``psd`` (..., n//2+1) 1/Hz -> (...) float64.

    The network SNR of a (3, n) strain is ``sqrt(sum(optimal_snr(h, psd) ** 2))``.
    """
    return np.sqrt(inner_product(h, h, psd, fs, f_low))


def noise_from_psd(psd_long: np.ndarray, n_samples: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose one-sided PSD is ``psd_long`` ((..., m//2 + 1) on ``rfftfreq(m, 1/fs)``), cropped to
    the middle ``n_samples`` of the ``m``-sample periodic draw: (..., n_samples) float64, one row per PSD row.

    Each rfft coefficient has ``E|X|^2 = m fs S / 2``: std ``sqrt(m fs S / 4)`` per real and imaginary part;
    DC and Nyquist are real.
    """
    m = 2 * (psd_long.shape[-1] - 1)
    if not n_samples <= m:
        raise ValueError(f"cannot crop {n_samples} samples from a {m}-sample draw")
    scale = np.sqrt(np.asarray(psd_long, dtype=np.float64) * (m * fs / 4.0))
    draws = rng.standard_normal((2,) + scale.shape)
    coeffs = scale * (draws[0] + 1j * draws[1])
    coeffs[..., 0] = math.sqrt(2.0) * scale[..., 0] * draws[0, ..., 0]
    coeffs[..., -1] = math.sqrt(2.0) * scale[..., -1] * draws[0, ..., -1]
    start = (m - n_samples) // 2
    return np.fft.irfft(coeffs, n=m, axis=-1)[..., start : start + n_samples]


def network_noise(
    rng: np.random.Generator,
    fs: float = FS_HZ,
    n_samples: int = N_SAMPLES,
    detectors: tuple[str, ...] = NETWORK,
    model: str = "design",
    oversample: int = 4,
) -> np.ndarray:
    """Independent noise per detector from PSD ``model``: (len(detectors), n_samples) float64 strain at ``fs``."""
    if oversample < 1 or n_samples < 2 or n_samples % 2:
        raise ValueError(f"need even n_samples >= 2 and oversample >= 1, got {n_samples}, {oversample}")
    return noise_from_psd(network_psd(detectors, oversample * n_samples, fs, model), n_samples, fs, rng)
