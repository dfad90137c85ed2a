"""Detector noise curves (one-sided PSDs) of the G2Net generator and matched filter, from ``pycbc.psd``.

Every curve is an analytic or tabulated PSD shipped with LALSimulation and served by
``pycbc.psd.from_string``; nothing is re-implemented here. Two noise models (``PSD_MODELS``):

* ``design`` (default): aLIGO zero-detuned high-power design (``aLIGOZeroDetHighPower``) for H1 and L1,
  Advanced Virgo design (``AdvVirgo``) for V1.
* ``o3``: the O3 "low" sensitivity curves of LIGO-T1800545 (``aLIGOaLIGOO3LowT1800545`` for H1 and L1,
  ``aLIGOAdVO3LowT1800545`` for V1).

Units: frequencies in Hz, PSD in 1/Hz, one-sided (strain variance = integral over [0, fs/2]). The curves are
zero below their low-frequency cutoff in PyCBC; here they are **held at their value at ``low_cutoff_hz``**
(default 10 Hz) below it, so ``S(0)`` is finite and noise can be drawn on a full ``rfftfreq`` grid
("seismic-wall-free" noise: raw strain std ~1e-21 instead of infinite), and at their last value above the
highest frequency PyCBC fills (it leaves the Nyquist bin at 0).
"""

from __future__ import annotations

import functools

import numpy as np

DEFAULT_LOW_CUTOFF_HZ = 10.0
PSD_MODELS: dict[str, dict[str, str]] = {
    "design": {"H1": "aLIGOZeroDetHighPower", "L1": "aLIGOZeroDetHighPower", "V1": "AdvVirgo"},
    "o3": {"H1": "aLIGOaLIGOO3LowT1800545", "L1": "aLIGOaLIGOO3LowT1800545", "V1": "aLIGOAdVO3LowT1800545"},
}


def psd_name(detector: str, model: str = "design") -> str:
    """The ``pycbc.psd`` name of ``detector``'s curve in noise ``model`` (``PSD_MODELS``)."""
    if model not in PSD_MODELS:
        raise ValueError(f"unknown PSD model {model!r}; expected one of {sorted(PSD_MODELS)}")
    try:
        return PSD_MODELS[model][detector]
    except KeyError:
        raise ValueError(f"unknown detector {detector!r}; expected one of {sorted(PSD_MODELS[model])}") from None


@functools.lru_cache(maxsize=32)
def _held_curve(name: str, length: int, delta_f: float, low_cutoff_hz: float) -> np.ndarray:
    import pycbc.psd  # lazy: pycbc costs ~2 s to import

    psd = pycbc.psd.from_string(name, length, delta_f, low_cutoff_hz).numpy().astype(np.float64)
    k0 = int(np.ceil(low_cutoff_hz / delta_f))
    if not 0 <= k0 < length or not psd[k0] > 0:
        raise ValueError(f"{name}: no positive PSD value at the cutoff {low_cutoff_hz} Hz on this grid")
    psd[:k0] = psd[k0]
    positive = np.flatnonzero(psd > 0)
    psd[positive[-1] + 1 :] = psd[positive[-1]]  # PyCBC leaves the Nyquist bin at 0: hold the last value
    if not np.all(np.isfinite(psd) & (psd > 0)):
        raise ValueError(f"{name}: PSD not finite and positive above {low_cutoff_hz} Hz")
    psd.setflags(write=False)
    return psd


def detector_psd(
    detector: str,
    n_samples: int,
    fs: float,
    model: str = "design",
    low_cutoff_hz: float = DEFAULT_LOW_CUTOFF_HZ,
) -> np.ndarray:
    """PSD (1/Hz, float64, read-only) of ``detector`` on ``rfftfreq(n_samples, 1/fs)``: (n_samples//2 + 1,).

    Held at its ``low_cutoff_hz`` value below the cutoff (module doc).
    """
    if low_cutoff_hz <= 0 or n_samples < 2:
        raise ValueError(f"need low_cutoff_hz > 0 and n_samples >= 2, got {low_cutoff_hz}, {n_samples}")
    return _held_curve(psd_name(detector, model), n_samples // 2 + 1, fs / n_samples, float(low_cutoff_hz))


def network_psd(
    detectors: tuple[str, ...],
    n_samples: int,
    fs: float,
    model: str = "design",
    low_cutoff_hz: float = DEFAULT_LOW_CUTOFF_HZ,
) -> np.ndarray:
    """PSDs of ``detectors`` stacked: (len(detectors), n_samples//2 + 1) float64, 1/Hz, read-only."""
    psd = np.stack([detector_psd(det, n_samples, fs, model, low_cutoff_hz) for det in detectors])
    psd.setflags(write=False)
    return psd
