"""Numeric signal transforms for multichannel strain: bandpass, windows, PSDs, whitening, standardization.

Pure numpy/scipy (no Beam, no TensorFlow). Every function takes ``x`` of shape ``(n_channels, n_samples)``
(a 1-D ``(n_samples,)`` array is accepted and treated as one channel, and the output keeps the input's
shape) and works along the last axis. ``fs`` is the sample rate in Hz.

Numerics: physical strain is ~1e-22, so its power (~1e-44) underflows float32 (smallest normal 1.2e-38).
Every function casts its input to float64 *before* forming any product or power, and returns float64;
callers cast to float32 only at the very end (docs/ARCHITECTURE.md section 5).

The order used for G2Net examples is ``bandpass`` (build stage, per example), then ``normalize_strain``:
whiten by the train-average PSD -> Tukey window -> standardize with the train per-channel mean/std.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal

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


def _as_float64(x) -> np.ndarray:
    """Casts to a float64 array of 1 or 2 dimensions; raises ValueError otherwise."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected x of shape (n_samples,) or (n_channels, n_samples), got shape {x.shape}")
    return x


# Bandpass -------------------------------------------------------------------------------------------------


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
    x = _as_float64(x)
    # scipy's compiled sosfilt needs a writable buffer, so copy the cached read-only array (8 x 6 floats).
    sos = np.array(butter_bandpass_sos(low_hz, high_hz, fs, order))
    return np.asarray(scipy.signal.sosfiltfilt(sos, x, axis=-1), dtype=np.float64)


# Windows --------------------------------------------------------------------------------------------------


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
    x = _as_float64(x)
    return x * tukey_window(x.shape[-1], alpha)


# Power spectral density -----------------------------------------------------------------------------------


def rfft_freqs(n: int, fs: float) -> np.ndarray:
    """Frequencies in Hz of ``np.fft.rfft`` of ``n`` samples at ``fs`` Hz: ``(n // 2 + 1,)`` float64."""
    return np.fft.rfftfreq(int(n), d=1.0 / float(fs))


def welch_psd(
    x,
    fs: float,
    nperseg: int | None = None,
    noverlap: int | None = None,
    window="hann",
    detrend=False,
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectral density (1/Hz, i.e. strain**2/Hz) by Welch's method (``scipy.signal.welch``).

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``; cast to float64 before anything is squared.
      fs: sample rate in Hz.
      nperseg: segment length in samples; default ``n_samples`` (one segment: a windowed periodogram, on the
        rfft grid of ``x``, which is the grid ``whiten`` expects).
      noverlap: samples shared by consecutive segments; default ``nperseg // 2`` (scipy's).
      window: anything ``scipy.signal.get_window`` accepts (periodic window), or an array of ``nperseg``.
      detrend: as in ``scipy.signal.welch``; default ``False`` (no detrending; note scipy's default is
        ``'constant'``).

    Returns:
      freqs: ``(nperseg // 2 + 1,)`` float64, Hz.
      psd: ``(n_channels, nperseg // 2 + 1)`` (or ``(nperseg // 2 + 1,)`` for 1-D ``x``) float64, 1/Hz.
    """
    x = _as_float64(x)
    if nperseg is None:
        nperseg = x.shape[-1]
    freqs, psd = scipy.signal.welch(
        x,
        fs=float(fs),
        window=window,
        nperseg=int(nperseg),
        noverlap=noverlap,
        detrend=detrend,
        return_onesided=True,
        scaling="density",
        axis=-1,
    )
    return np.asarray(freqs, dtype=np.float64), np.asarray(psd, dtype=np.float64)


def periodogram_psd(x, fs: float, window="hann") -> tuple[np.ndarray, np.ndarray]:
    """One-sided windowed periodogram (1/Hz), written out explicitly (the tf.Transform copy mirrors it).

    With ``w`` the periodic window of ``n = n_samples`` points and ``X = rfft(x * w)``::

        psd[k] = |X[k]|**2 * 2 / (fs * sum(w**2))    for 0 < k < n/2
        psd[k] = |X[k]|**2 * 1 / (fs * sum(w**2))    for k = 0 and, when n is even, k = n/2 (Nyquist)

    No detrending. Equals ``scipy.signal.periodogram(x, fs, window, detrend=False)`` and
    ``welch_psd(x, fs, nperseg=n, window=window)``.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``; cast to float64 before anything is squared.
      fs: sample rate in Hz.
      window: name/tuple for ``scipy.signal.get_window`` (periodic, as scipy's periodogram uses), or an
        array of ``n_samples`` values.

    Returns:
      freqs: ``(n // 2 + 1,)`` float64, Hz.
      psd: ``(n_channels, n // 2 + 1)`` (or ``(n // 2 + 1,)``) float64, 1/Hz.
    """
    x = _as_float64(x)
    n = x.shape[-1]
    if isinstance(window, str | tuple):
        w = scipy.signal.get_window(window, n, fftbins=True)
    else:
        w = window
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"window must have shape ({n},) to match x of shape {x.shape}, got {w.shape}")
    spec = np.fft.rfft(x * w, axis=-1)
    psd = (spec.real**2 + spec.imag**2) * (2.0 / (float(fs) * np.sum(w * w)))
    # DC and Nyquist have no mirrored negative-frequency bin: undo the doubling.
    psd[..., 0] /= 2.0
    if n % 2 == 0:
        psd[..., -1] /= 2.0
    return rfft_freqs(n, fs), psd


# Whitening ------------------------------------------------------------------------------------------------


def band_mask(n: int, fs: float, band: tuple[float, float] = (20.0, 500.0)) -> np.ndarray:
    """Boolean ``(n // 2 + 1,)`` mask of the rfft bins with ``band[0] <= f <= band[1]`` (Hz, inclusive)."""
    low, high = float(band[0]), float(band[1])
    if not 0.0 <= low < high:
        raise ValueError(f"band must satisfy 0 <= low < high, got {band}")
    freqs = rfft_freqs(n, fs)
    return (freqs >= low) & (freqs <= high)


def whitening_norm(n: int, fs: float, band: tuple[float, float] = (20.0, 500.0)) -> float:
    """The scalar ``c`` that ``whiten`` multiplies by: ``c = sqrt(2 * n / (fs * W))``.

    ``W = sum over in-band rfft bins k of m_k``, with ``m_k = 1`` for DC (k = 0) and, when n is even,
    Nyquist (k = n/2), and ``m_k = 2`` otherwise (the number of full-DFT bins that rfft bin k stands for).
    For the default band neither DC nor Nyquist is in band, so ``W = 2 * n_in_band`` and
    ``c = sqrt(n / (fs * n_in_band)) ~= sqrt(1 / (high_hz - low_hz))``.

    Derivation: for stationary noise with one-sided PSD ``S`` (1/Hz), ``E|rfft(x)[k]|**2 = n * fs * S_k / 2``.
    After dividing by ``sqrt(S_k)`` and scaling by ``c``, every in-band bin has
    ``E|Y_k|**2 = c**2 * n * fs / 2``; by Parseval the expected sample variance of ``y = irfft(Y)`` is
    ``(1 / n**2) * sum_k m_k * E|Y_k|**2 = c**2 * fs * W / (2 * n)``, which is 1 for the ``c`` above.
    (``sqrt(2 / fs)`` alone would give whitened noise the PSD of unit-variance white noise, i.e. variance
    ``W / n``, the in-band fraction of the spectrum; the extra ``sqrt(n / W)`` makes the band-limited
    output itself unit variance.)
    """
    mask = band_mask(n, fs, band)
    weights = np.full(mask.shape, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    total = float(np.sum(weights[mask]))
    if total == 0.0:
        raise ValueError(f"band {band} contains no rfft bin for n={n}, fs={fs}")
    return float(np.sqrt(2.0 * n / (float(fs) * total)))


def whiten(x, psd, fs: float, band: tuple[float, float] = (20.0, 500.0)) -> np.ndarray:
    """Frequency-domain whitening by a given one-sided PSD, band-limited, normalized to unit variance.

    ``y = irfft(c * M * rfft(x) / sqrt(psd), n)`` along the last axis, where ``M`` zeroes the rfft bins
    outside ``band`` (see ``band_mask``; this also avoids dividing by the ~0 PSD that a bandpassed series
    has there) and ``c = whitening_norm(n, fs, band) = sqrt(2 * n / (fs * W))``.

    Definition of the normalization: Gaussian noise whose one-sided PSD is ``psd`` comes out with expected
    variance exactly 1 (and a flat spectrum of one-sided level ``2 * n / (fs * W) ~= 1 / bandwidth_hz`` in
    band, zero outside). See ``whitening_norm`` for the derivation.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)`` strain; cast to float64.
      psd: one-sided PSD in 1/Hz on the rfft grid of ``x`` (``rfft_freqs(n_samples, fs)``), shape
        ``(n_channels, n_samples // 2 + 1)``, or ``(n_samples // 2 + 1,)`` shared by all channels; cast to
        float64. Must be finite and > 0 in band; values out of band are ignored.
      fs: sample rate in Hz.
      band: ``(low_hz, high_hz)`` kept, inclusive.

    Returns:
      Same shape as ``x``, float64, dimensionless.

    Raises:
      ValueError: on a PSD shape that does not match ``x``, or a non-positive / non-finite PSD in band.
    """
    x = _as_float64(x)
    psd = np.asarray(psd, dtype=np.float64)
    n = x.shape[-1]
    n_freq = n // 2 + 1
    if psd.ndim == 1:
        ok = psd.shape == (n_freq,)
    elif psd.ndim == 2 and x.ndim == 2:
        ok = psd.shape == (x.shape[0], n_freq)
    else:
        ok = False
    if not ok:
        expected = f"({n_freq},)" if x.ndim == 1 else f"({x.shape[0]}, {n_freq}) or ({n_freq},)"
        raise ValueError(
            f"psd shape {psd.shape} does not match x of shape {x.shape}: expected {expected} "
            f"(the rfft grid of {n} samples)"
        )
    mask = band_mask(n, fs, band)
    in_band = psd[..., mask]
    bad = ~(np.isfinite(in_band) & (in_band > 0.0))
    if np.any(bad):
        freqs = rfft_freqs(n, fs)[mask]
        first = freqs[np.nonzero(bad)[-1][0]]
        raise ValueError(
            f"psd must be finite and > 0 inside band {band} Hz; {int(np.sum(bad))} bad value(s), first at {first:g} Hz"
        )
    # Divide in band only; out-of-band bins are set to zero without touching their PSD values.
    scale = np.zeros(np.broadcast_shapes(psd.shape, (n_freq,)), dtype=np.float64)
    scale[..., mask] = whitening_norm(n, fs, band) / np.sqrt(in_band)
    spec = np.fft.rfft(x, axis=-1) * scale
    return np.fft.irfft(spec, n=n, axis=-1)


# Moments and standardization ------------------------------------------------------------------------------


def channel_moments(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, mean of squares)`` over the last axis, computed in float64.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``.

    Returns:
      mean, mean_sq: each ``(n_channels,)`` float64 (0-d for 1-D ``x``).
    """
    x = _as_float64(x)
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
    x = _as_float64(x)
    return np.mean(x, axis=-1), np.std(x, axis=-1)


def standardize(x, mean, std) -> np.ndarray:
    """``(x - mean[:, None]) / std[:, None]`` in float64.

    Args:
      x: ``(n_channels, n_samples)`` or ``(n_samples,)``.
      mean, std: ``(n_channels,)`` (or scalars), in the units of ``x``; ``std`` must be finite and > 0.

    Returns:
      Same shape as ``x``, float64.
    """
    x = _as_float64(x)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if not np.all(np.isfinite(std) & (std > 0.0)):
        raise ValueError(f"std must be finite and > 0 for every channel, got {std}")
    return (x - mean[..., None]) / std[..., None]


# Composed reference ---------------------------------------------------------------------------------------


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
