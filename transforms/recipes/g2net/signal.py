"""Numeric signal transforms for multichannel strain: bandpass, windows, PSDs, whitening, standardization.

Pure numpy/scipy (no Beam, no TensorFlow). Every function takes ``x`` of shape ``(n_channels, n_samples)``
(a 1-D ``(n_samples,)`` array is accepted and treated as one channel, and the output keeps the input's
shape) and works along the last axis. ``fs`` is the sample rate in Hz.

Numerics: physical strain is ~1e-22, so its power (~1e-44) underflows float32 (smallest normal 1.2e-38).
Every function casts its input to float64 *before* forming any product or power, and returns float64;
callers cast to float32 only at the very end (docs/ARCHITECTURE.md section 5).

The order used for G2Net examples is ``bandpass`` (build stage, per example), then ``normalize_strain``:
whiten by the train-average PSD -> Tukey window -> standardize with the train per-channel mean/std.

The frequencies, PSDs and whitening live in ``spectral.py``; this module names them too (``__all__``).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal

from transforms.recipes.g2net.spectral import (
    as_float64,
    band_mask,
    periodogram_psd,
    rfft_freqs,
    welch_psd,
    whiten,
    whitening_norm,
)

__all__ = [
    "apply_tukey",
    "band_mask",
    "bandpass",
    "butter_bandpass_sos",
    "channel_moments",
    "channel_stats",
    "normalize_strain",
    "periodogram_psd",
    "rfft_freqs",
    "standardize",
    "stats_from_moments",
    "tukey_window",
    "welch_psd",
    "whiten",
    "whitening_norm",
]


def butter_bandpass_sos(low_hz: float = 20.0, high_hz: float = 500.0, fs: float = 2048.0, order: int = 8) -> np.ndarray:
    """Butterworth bandpass in second-order sections, cached per parameter set.

    The arguments are normalized to ``(float, float, float, int)`` before the ``functools.lru_cache`` lookup,
    so defaults, positional and keyword calls with the same values share one cached array.

    Args:
      low_hz, high_hz: band edges in Hz (-3 dB points of one pass), ``0 < low_hz < high_hz < fs / 2``.
      fs: sample rate in Hz.
      order: the ``N`` given to ``scipy.signal.butter`` (a bandpass of order N has N sections, 2N poles).

    Returns:
      sos: ``(order, 6)`` float64, read-only (shared by every caller through the cache). Pass
        ``np.array(sos)`` (a writable copy) to ``scipy.signal.sosfilt``/``sosfiltfilt``: their compiled
        code refuses read-only buffers.
    """
    if not 0.0 < low_hz < high_hz < fs / 2.0:
        raise ValueError(f"need 0 < low_hz < high_hz < fs/2, got low_hz={low_hz}, high_hz={high_hz}, fs={fs}")
    if int(order) != order or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    return _butter_sos_cached(float(low_hz), float(high_hz), float(fs), int(order))


@functools.lru_cache(maxsize=64)
def _butter_sos_cached(low_hz: float, high_hz: float, fs: float, order: int) -> np.ndarray:
    sos = scipy.signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    sos = np.asarray(sos, dtype=np.float64)
    sos.setflags(write=False)
    return sos


def bandpass(x, fs: float = 2048.0, low_hz: float = 20.0, high_hz: float = 500.0, order: int = 8) -> np.ndarray:
    """Zero-phase Butterworth bandpass along the last axis (``scipy.signal.sosfiltfilt``, odd padding).

    The filter runs forward and backward, so the magnitude response is ``|H(f)|**2`` of the
    ``butter_bandpass_sos`` filter and the phase is zero (no peak shift).

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)`` strain (any float dtype; cast to float64 first).
      fs: sample rate in Hz. low_hz, high_hz, order: see ``butter_bandpass_sos``.

    Returns:
      Same shape as ``x``, float64.
    """
    x = as_float64(x)
    # scipy's compiled sosfilt needs a writable buffer, so copy the cached read-only array (8 x 6 floats).
    sos = np.array(butter_bandpass_sos(low_hz, high_hz, fs, order))
    return np.asarray(scipy.signal.sosfiltfilt(sos, x, axis=-1), dtype=np.float64)


@functools.lru_cache(maxsize=64)
def _tukey_cached(n: int, alpha: float) -> np.ndarray:
    w = np.asarray(scipy.signal.windows.tukey(n, alpha, sym=True), dtype=np.float64)
    w.setflags(write=False)
    return w


def tukey_window(n: int, alpha: float = 0.1) -> np.ndarray:
    """Symmetric Tukey window (``scipy.signal.windows.tukey(n, alpha, sym=True)``).

    ``alpha`` is the tapered fraction of the window: 0 gives all ones (rectangular), 1 gives a symmetric Hann.

    Returns:
      ``(n,)`` float64, read-only (cached per ``(n, alpha)``).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"window length must be a positive integer, got {n!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"tukey alpha must be in [0, 1], got {alpha}")
    return _tukey_cached(int(n), float(alpha))


def apply_tukey(x, alpha: float = 0.1) -> np.ndarray:
    """Multiplies every channel by ``tukey_window(n_samples, alpha)``.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``.

    Returns:
      Same shape as ``x``, float64.
    """
    x = as_float64(x)
    return x * tukey_window(x.shape[-1], alpha)


def channel_moments(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, mean of squares)`` over the last axis, computed in float64.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``.

    Returns:
      mean, mean_sq: each ``(n_channels,)`` float64 (0-d for 1-D ``x``).
    """
    x = as_float64(x)
    return np.mean(x, axis=-1), np.mean(x * x, axis=-1)


def stats_from_moments(mean, mean_sq) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` from ``(mean, mean of squares)``: ``std = sqrt(max(mean_sq - mean**2, 0))``, float64.

    The subtraction loses precision when ``|mean| >> std``; whitened strain has mean ~0, where it is exact
    to float64 rounding.
    """
    mean = np.asarray(mean, dtype=np.float64)
    mean_sq = np.asarray(mean_sq, dtype=np.float64)
    return mean, np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))


def channel_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)`` over the last axis (population std, ``ddof=0``), float64, two-pass.

    Returns:
      mean, std: each ``(n_channels,)`` float64 (0-d for 1-D ``x``).
    """
    x = as_float64(x)
    return np.mean(x, axis=-1), np.std(x, axis=-1)


def standardize(x, mean, std) -> np.ndarray:
    """``(x - mean[:, None]) / std[:, None]`` in float64.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``.
      mean, std: ``(n_channels,)`` (or scalars), in the units of ``x``; ``std`` must be finite and > 0.

    Returns:
      Same shape as ``x``, float64.
    """
    x = as_float64(x)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if not np.all(np.isfinite(std) & (std > 0.0)):
        raise ValueError(f"std must be finite and > 0 for every channel, got {std}")
    return (x - mean[..., None]) / std[..., None]


def normalize_strain(
    x_bandpassed,
    avg_psd,
    mean,
    std,
    fs: float = 2048.0,
    band: tuple[float, float] = (20.0, 500.0),
    tukey_alpha: float = 0.1,
) -> np.ndarray:
    """Reference normalization after the bandpass: whiten by ``avg_psd`` -> Tukey window -> standardize.

    ``standardize(apply_tukey(whiten(x_bandpassed, avg_psd, fs, band), tukey_alpha), mean, std)``; this is
    the numpy oracle for the tf.Transform ``preprocessing_fn``.

    Args:
      x_bandpassed: ``(n_channels, n_samples)`` bandpassed strain (e.g. ``(3, 4096)`` at 2048 Hz).
      avg_psd: train-average one-sided PSD, 1/Hz, ``(n_channels, n_samples // 2 + 1)`` or
        ``(n_samples // 2 + 1,)``, on the rfft grid.
      mean, std: ``(n_channels,)`` per-channel statistics of the whitened, windowed train strain.
      fs: sample rate in Hz. band: whitening band in Hz. tukey_alpha: Tukey taper fraction.

    Returns:
      ``(n_channels, n_samples)`` float64.
    """
    whitened = whiten(x_bandpassed, avg_psd, fs, band)
    return standardize(apply_tukey(whitened, tukey_alpha), mean, std)
