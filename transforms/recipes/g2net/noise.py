"""Detector noise and noise-weighted inner products of the G2Net sample generator: design PSDs, coloured noise, SNR.

Topic: the noise model and the SNR it defines (all numpy). Units: strain is dimensionless, sampled at ``fs`` Hz
(default ``FS_HZ = 2048``); PSDs are one-sided, in 1/Hz, on ``rfftfreq(n_samples, 1/fs)``, shape
``(..., n_samples // 2 + 1)``; inner products and SNRs are dimensionless. Shapes: ``colored_noise`` returns
``(n_samples,)``, ``network_noise`` ``(n_detectors, n_samples)`` (rows H1, L1, V1), ``network_psd``
``(n_detectors, n_samples // 2 + 1)``; ``inner_product`` / ``optimal_snr`` reduce the last axis of ``(..., n)``.

* Noise: Gaussian, stationary, coloured by the analytic design PSDs of ``transforms.recipes.g2net.psd_models``
  (aLIGO for H1/L1, AdVirgo for V1), drawn in the frequency domain on a 4x longer segment whose middle is kept,
  so the 2-s window is not periodic. Raw strain std is ~7e-22 (H1, L1) and ~9e-22 (V1), set by the < 20 Hz band.
* SNR: ``<a, b> = 4 df Re sum_{f >= f_low} A(f) B*(f) / S(f)`` with ``A = rfft(a) / fs`` (no window); the
  optimal SNR of ``h`` is ``sqrt(<h, h>)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK
from transforms.recipes.g2net.psd_models import DEFAULT_LOW_CUTOFF_HZ, design_psd
from transforms.recipes.g2net.waveform import F_LOW_HZ, FS_HZ, N_SAMPLES

# ----------------------------------------------------------------------------------------------------------
# SNR


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


@functools.lru_cache(maxsize=16)
def network_psd(
    fs: float = FS_HZ,
    n_samples: int = N_SAMPLES,
    detectors: tuple[str, ...] = NETWORK,
    low_cutoff_hz: float = DEFAULT_LOW_CUTOFF_HZ,
) -> np.ndarray:
    """Design PSDs on ``rfftfreq(n_samples, 1/fs)``: (len(detectors), n_samples//2 + 1) float64, 1/Hz, read-only."""
    freqs = np.fft.rfftfreq(n_samples, 1.0 / fs)
    psd = np.stack([design_psd(det, freqs, low_cutoff_hz) for det in detectors])
    psd.setflags(write=False)
    return psd


# ----------------------------------------------------------------------------------------------------------
# Noise


def _noise_from_psd(psd_long: np.ndarray, n_samples: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose one-sided PSD is ``psd_long`` ((..., m//2 + 1) on ``rfftfreq(m, 1/fs)``), cropped to
    the middle ``n_samples`` of the ``m``-sample periodic draw: (..., n_samples) float64, one row per PSD row."""
    m = 2 * (psd_long.shape[-1] - 1)
    # Each rfft coefficient has E|X|^2 = m fs S / 2: std sqrt(m fs S / 4) per part; DC and Nyquist real.
    scale = np.sqrt(psd_long * (m * fs / 4.0))
    draws = rng.standard_normal((2,) + psd_long.shape)
    coeffs = scale * (draws[0] + 1j * draws[1])
    coeffs[..., 0] = math.sqrt(2.0) * scale[..., 0] * draws[0, ..., 0]
    coeffs[..., -1] = math.sqrt(2.0) * scale[..., -1] * draws[0, ..., -1]
    start = (m - n_samples) // 2
    return np.fft.irfft(coeffs, n=m, axis=-1)[..., start : start + n_samples]


def colored_noise(
    psd_fn: Callable[[np.ndarray], np.ndarray],
    n_samples: int = N_SAMPLES,
    fs: float = FS_HZ,
    *,
    rng: np.random.Generator,
    oversample: int = 4,
) -> np.ndarray:
    """Stationary Gaussian noise with one-sided PSD ``psd_fn(f)`` (f in Hz -> 1/Hz): (n_samples,) float64.

    Drawn in the frequency domain on ``oversample * n_samples`` samples (rfft coefficient std per real and
    imaginary part ``sqrt(S m fs / 4)``) and cropped to the middle ``n_samples``, so the result is not
    periodic. ``psd_fn`` must be finite at f = 0 (see ``transforms.recipes.g2net.psd_models``).
    """
    if oversample < 1 or n_samples < 2 or n_samples % 2:
        raise ValueError(f"need even n_samples >= 2 and oversample >= 1, got {n_samples}, {oversample}")
    m = oversample * n_samples
    psd_long = np.asarray(psd_fn(np.fft.rfftfreq(m, 1.0 / fs)), dtype=np.float64)
    if not np.all(np.isfinite(psd_long)) or np.any(psd_long < 0):
        raise ValueError("psd_fn must return finite, non-negative values on [0, fs/2]")
    return _noise_from_psd(psd_long, n_samples, fs, rng)


def network_noise(
    rng: np.random.Generator,
    fs: float = FS_HZ,
    n_samples: int = N_SAMPLES,
    detectors: tuple[str, ...] = NETWORK,
    oversample: int = 4,
) -> np.ndarray:
    """Independent design-PSD noise per detector: (len(detectors), n_samples) float64 strain at ``fs`` Hz."""
    return _noise_from_psd(network_psd(fs, oversample * n_samples, detectors), n_samples, fs, rng)
