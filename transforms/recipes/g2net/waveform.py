"""Compact-binary signals of the G2Net generator: source parameters, IMR polarizations from LALSimulation (through
``pycbc.waveform.get_td_waveform``) and their projection onto H1, L1, V1 (``transforms.recipes.g2net.detectors``).

Units: strain is dimensionless; times in seconds, frequencies in Hz, masses in solar masses (detector frame),
angles in radians, distances in Mpc, spins dimensionless. ``render_injection`` returns ``(3, n_samples)`` float64,
for the G2Net format ``(3, N_SAMPLES) = (3, 4096)`` at ``FS_HZ = 2048`` Hz (2 s), rows H1, L1, V1.

* Signal: any time-domain approximant LALSimulation knows (``IMRPhenomD`` by default: inspiral, merger and
  ringdown, aligned spins; ``IMRPhenomXPHM`` for precessing spins and higher modes), generated from ``f_low``
  at ``1 / fs``. ``tc`` is the geocentric merger time (the waveform's ``t = 0``, the peak of ``h+^2 + hx^2`` for
  Phenom models) in seconds from the window start; the part of the signal before the window start is cut.
* Projection: ``h_d(t) = F+_d h+(t - tc - dt_d) + Fx_d hx(t - tc - dt_d)`` with the antenna patterns and
  geocenter delays of ``pycbc.detector.Detector`` at ``gps_time + tc``. The fractional-sample part of the delay
  is applied exactly (a frequency-domain phase on the zero-padded waveform); the integer part by indexing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK, antenna_pattern, time_delay_from_geocenter

FS_HZ = 2048.0
N_SAMPLES = 4096
F_LOW_HZ = 20.0
DEFAULT_APPROXIMANT = "IMRPhenomD"
APPROXIMANTS = ("IMRPhenomD", "IMRPhenomXAS", "IMRPhenomXPHM", "IMRPhenomPv2", "SEOBNRv4_opt")


@dataclass(frozen=True)
class SourceParams:
    """One compact binary as injected.

    ``m1 >= m2`` (M_sun, detector frame); ``spin{1,2}{x,y,z}`` dimensionless spin components (x, y zero for
    aligned-spin approximants); ``ra``, ``dec``, ``psi``, ``inclination``, ``phase`` (coalescence phase) in
    radians; ``tc`` geocentric merger time in seconds from the window start; ``gps_time`` GPS time of the window
    start (sets the Earth's orientation); ``distance_mpc`` luminosity distance (sets the amplitude); ``f_low``
    waveform start frequency (Hz); ``approximant`` the LALSimulation approximant name.
    """

    m1: float
    m2: float
    spin1x: float
    spin1y: float
    spin1z: float
    spin2x: float
    spin2y: float
    spin2z: float
    ra: float
    dec: float
    psi: float
    inclination: float
    phase: float
    tc: float
    gps_time: float
    distance_mpc: float
    f_low: float = F_LOW_HZ
    approximant: str = DEFAULT_APPROXIMANT

    @property
    def chirp_mass(self) -> float:
        """Chirp mass in solar masses."""
        return chirp_mass(self.m1, self.m2)

    @property
    def chi_eff(self) -> float:
        """Mass-weighted aligned spin ``(m1 s1z + m2 s2z) / (m1 + m2)``."""
        return (self.m1 * self.spin1z + self.m2 * self.spin2z) / (self.m1 + self.m2)

    @classmethod
    def from_mapping(cls, row: Mapping[str, object]) -> SourceParams:
        """Parameters from a mapping such as an ``injections.csv`` row (strings are parsed; extra keys ignored)."""
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = row.get(field.name)
            if raw is None or raw == "":
                if field.name in ("f_low", "approximant"):
                    continue
                raise ValueError(f"injection row {row.get('id', '?')!r} has no {field.name!r} (a noise-only sample?)")
            values[field.name] = str(raw) if field.name == "approximant" else float(raw)
        return cls(**values)


def chirp_mass(m1, m2):
    """Chirp mass ``(m1 m2)^(3/5) / (m1 + m2)^(1/5)`` in the units of ``m1``, ``m2``."""
    return (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2


# ----------------------------------------------------------------------------------------------------------
# Polarizations


@functools.lru_cache(maxsize=64)
def _cached_polarizations(key: tuple, fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    from pycbc.waveform import get_td_waveform  # lazy: pycbc costs ~2 s to import

    m1, m2, s1x, s1y, s1z, s2x, s2y, s2z, inclination, phase, distance, f_low, approximant = key
    hp, hc = get_td_waveform(
        approximant=approximant,
        mass1=m1,
        mass2=m2,
        spin1x=s1x,
        spin1y=s1y,
        spin1z=s1z,
        spin2x=s2x,
        spin2y=s2y,
        spin2z=s2z,
        inclination=inclination,
        coa_phase=phase,
        distance=distance,
        delta_t=1.0 / fs,
        f_lower=f_low,
    )
    hplus = hp.numpy().astype(np.float64)
    hcross = hc.numpy().astype(np.float64)
    hplus.setflags(write=False)
    hcross.setflags(write=False)
    return hplus, hcross, float(hp.start_time)


def polarizations(params: SourceParams, fs: float = FS_HZ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(h+, hx, t0)``: the approximant's polarizations (two read-only float64 arrays of one length) sampled at
    ``fs`` Hz, and the time ``t0 < 0`` (s) of their first sample relative to the merger. Cached per process
    (the repeated injections of one source cost one waveform)."""
    if params.distance_mpc <= 0:
        raise ValueError(f"distance must be positive, got {params.distance_mpc} Mpc")
    values = astuple(params)
    names = [f.name for f in fields(SourceParams)]
    key = tuple(values[names.index(n)] for n in _POLARIZATION_KEYS)
    return _cached_polarizations(key, float(fs))


_POLARIZATION_KEYS = (
    "m1",
    "m2",
    "spin1x",
    "spin1y",
    "spin1z",
    "spin2x",
    "spin2y",
    "spin2z",
    "inclination",
    "phase",
    "distance_mpc",
    "f_low",
    "approximant",
)


def place(waveform: np.ndarray, t0: float, t_merger: float, fs: float, n_samples: int) -> np.ndarray:
    """``waveform`` (first sample at ``t0`` s from its merger) sampled on the window ``t_j = j / fs`` with its
    merger at ``t_merger`` s: (n_samples,) float64. The fractional-sample delay is a linear phase on the
    zero-padded spectrum (exact for a band-limited signal); parts outside the window are cut."""
    w = np.asarray(waveform, dtype=np.float64)
    offset = (t_merger + t0) * fs  # window index of waveform sample 0
    whole = math.floor(offset)
    frac = offset - whole
    if frac > 1e-9:
        n_fft = 1 << int(math.ceil(math.log2(w.size + 64)))
        k = np.fft.rfftfreq(n_fft)  # cycles per sample
        w = np.fft.irfft(np.fft.rfft(w, n_fft) * np.exp(-2j * math.pi * k * frac), n_fft)
    out = np.zeros(n_samples, dtype=np.float64)
    lo, hi = max(0, whole), min(n_samples, whole + w.size)
    if lo < hi:
        out[lo:hi] = w[lo - whole : hi - whole]
    return out


def project_to_detectors(
    params: SourceParams,
    fs: float = FS_HZ,
    n_samples: int = N_SAMPLES,
    detectors: Sequence[str] = NETWORK,
) -> np.ndarray:
    """Detector strains of ``params`` on the window ``t = k / fs``: (len(detectors), n_samples) float64.

    Row ``d`` is ``F+_d h+ + Fx_d hx`` with the merger at ``tc + dt_d`` (``dt_d`` the geocenter-to-detector
    delay); antenna patterns and delays are evaluated at ``gps_time + tc``.
    """
    hplus, hcross, t0 = polarizations(params, fs)
    t_gps = params.gps_time + params.tc
    out = np.empty((len(detectors), n_samples), dtype=np.float64)
    for row, det in enumerate(detectors):
        fplus, fcross = antenna_pattern(det, params.ra, params.dec, params.psi, t_gps)
        delay = time_delay_from_geocenter(det, params.ra, params.dec, t_gps)
        out[row] = place(fplus * hplus + fcross * hcross, t0, params.tc + delay, fs, n_samples)
    return out


def render_injection(
    params: SourceParams | Mapping[str, object], fs: float = FS_HZ, n_samples: int = N_SAMPLES
) -> np.ndarray:
    """The noise-free injected strain of one truth-table row (``SourceParams`` or an ``injections.csv`` row):
    (3, n_samples) float64, rows H1, L1, V1, sampled at ``fs`` Hz. Equals the injected signal bit for bit."""
    if not isinstance(params, SourceParams):
        params = SourceParams.from_mapping(params)
    return project_to_detectors(params, fs, n_samples, NETWORK)
