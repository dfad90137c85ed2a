"""Analytic design noise curves (one-sided PSDs) for the second-generation detector network.

Every function takes a frequency array ``f`` in Hz (any shape, ``f >= 0``) and returns the one-sided power
spectral density ``S(f)`` in 1/Hz, float64, of the same shape. One-sided means the strain variance is
``integral_0^{fs/2} S(f) df``.

The analytic fits diverge at ``f -> 0``. Below ``low_cutoff_hz`` (default 10 Hz, below which neither design
curve is defined) the PSD is held at its value at the cutoff, so ``S(0)`` is finite and a PSD can be evaluated
on a full ``numpy.fft.rfftfreq`` grid. Noise generated with a held curve is "seismic-wall-free": its
sub-10-Hz power is the 10 Hz level, which is what makes raw strain std ~1e-21 rather than infinite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_LOW_CUTOFF_HZ = 10.0

PsdFn = Callable[[np.ndarray], np.ndarray]


def _clipped_frequency(f: np.ndarray, low_cutoff_hz: float) -> np.ndarray:
    """Frequencies (Hz, float64) with everything below ``low_cutoff_hz`` raised to the cutoff."""
    if low_cutoff_hz <= 0:
        raise ValueError(f"low_cutoff_hz must be positive, got {low_cutoff_hz}")
    f = np.asarray(f, dtype=np.float64)
    if np.any(f < 0) or not np.all(np.isfinite(f)):
        raise ValueError("frequencies must be finite and non-negative")
    return np.maximum(f, low_cutoff_hz)


def aligo_psd(f: np.ndarray, low_cutoff_hz: float = DEFAULT_LOW_CUTOFF_HZ) -> np.ndarray:
    """Advanced LIGO design PSD, analytic fit. ``f``: Hz, any shape -> ``S(f)``: 1/Hz, float64, same shape.

    ``x = f / 215 Hz``, ``S = 1e-49 [x^-4.14 - 5 x^-2 + 111 (1 - x^2 + x^4/2) / (1 + x^2/2)]``
    (B. S. Sathyaprakash & B. F. Schutz, Living Rev. Relativ. 12, 2 (2009); LAL ``LALAdvLIGOPsd``).
    P. Ajith, PRD 84, 084037 (2011) fits the zero-detuned high-power curve with the same form and
    ``f0 = 245.4 Hz``. ASD at 100 Hz: ~2.9e-24 /sqrt(Hz). Held at its ``low_cutoff_hz`` value below the cutoff.
    """
    x = _clipped_frequency(f, low_cutoff_hz) / 215.0
    x2 = x * x
    return 1e-49 * (x**-4.14 - 5.0 / x2 + 111.0 * (1.0 - x2 + 0.5 * x2 * x2) / (1.0 + 0.5 * x2))


def advirgo_psd(f: np.ndarray, low_cutoff_hz: float = DEFAULT_LOW_CUTOFF_HZ) -> np.ndarray:
    """Advanced Virgo design PSD, analytic fit. ``f``: Hz, any shape -> ``S(f)``: 1/Hz, float64, same shape.

    ``x = f / 720 Hz``, ``L = ln x``,
    ``S = 1e-47 [2.67e-7 x^-5.6 + 0.59 exp(L^2 (-3.2 - 1.08 L - 0.13 L^2)) x^-4.1 + 0.68 exp(-0.73 L^2) x^5.34]``
    (Sathyaprakash & Schutz, Living Rev. Relativ. 12, 2 (2009), AdVirgo fit; LAL ``LALAdvVIRGOPsd``, which
    adds the last term twice). ASD at 100 Hz: ~6.5e-24 /sqrt(Hz). Held at its ``low_cutoff_hz`` value below
    the cutoff.
    """
    x = _clipped_frequency(f, low_cutoff_hz) / 720.0
    lnx = np.log(x)
    lnx2 = lnx * lnx
    seismic = 2.67e-7 * x**-5.6
    thermal = 0.59 * np.exp(lnx2 * (-3.2 - 1.08 * lnx - 0.13 * lnx2)) * x**-4.1
    shot = 0.68 * np.exp(-0.73 * lnx2) * x**5.34
    return 1e-47 * (seismic + thermal + shot)


_DETECTOR_PSDS: dict[str, PsdFn] = {"H1": aligo_psd, "L1": aligo_psd, "V1": advirgo_psd}


def design_psd(detector: str, f: np.ndarray, low_cutoff_hz: float = DEFAULT_LOW_CUTOFF_HZ) -> np.ndarray:
    """Design PSD of ``detector`` ('H1', 'L1' -> aLIGO; 'V1' -> AdVirgo). ``f``: Hz -> ``S(f)``: 1/Hz, float64."""
    try:
        fn = _DETECTOR_PSDS[detector]
    except KeyError:
        raise ValueError(f"unknown detector {detector!r}; expected one of {sorted(_DETECTOR_PSDS)}") from None
    return fn(f, low_cutoff_hz)
