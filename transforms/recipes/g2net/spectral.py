"""Spectral numerics for multichannel strain: rfft frequencies, PSDs (Welch, periodogram) and whitening.

Conventions as in ``signal.py`` (which names these functions too): ``x`` of shape ``(n_channels, n_samples)`` or
``(n_samples,)``, along the last axis, ``fs`` in Hz, cast to float64 before any product or power (strain ~1e-22
underflows float32 when squared).
"""

from __future__ import annotations

import numpy as np
import scipy.signal


def as_float64(x) -> np.ndarray:
    """Casts to a float64 array of 1 or 2 dimensions; raises ValueError otherwise."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected x of shape (n_samples,) or (n_channels, n_samples), got shape {x.shape}")
    return x


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
    x = as_float64(x)
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
    x = as_float64(x)
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
    x = as_float64(x)
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
