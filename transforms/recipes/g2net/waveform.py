"""Compact-binary waveform of the G2Net sample generator: source parameters, Newtonian chirp, detector projection.

Topic: the signal physics (all numpy, no LAL) and the data-format constants the generator, the noise model
(``transforms.recipes.g2net.noise``) and the matched filter share. Units: strain is dimensionless; times in
seconds, frequencies in Hz, masses in solar masses (detector frame), angles in radians, distances in Mpc.
Shapes: ``inspiral_polarizations`` returns two float64 arrays of the shape of its time argument;
``project_to_detectors`` / ``render_injection`` return ``(n_detectors, n_samples)`` float64, for the G2Net format
``(3, N_SAMPLES) = (3, 4096)`` at ``FS_HZ = 2048`` Hz (2 s), rows H1, L1, V1.

* Signal: leading-order post-Newtonian ("Newtonian chirp") inspiral, quadrupole amplitude ~ f^(2/3), from
  ``f_low`` (20 Hz, or the window start, with a smooth taper on) to the Schwarzschild ISCO frequency
  ``c^3 / (6^1.5 pi G M)`` (smooth taper off). ``tc`` is the Newtonian coalescence time at the geocenter,
  where ``f`` would diverge; the waveform ends slightly earlier, at the ISCO.
* Projection: ``h_d(t) = F+ h+(t - dt_d) + Fx hx(t - dt_d)`` with the LAL antenna patterns and geocenter
  delays of ``transforms.recipes.g2net.detectors``; the delay is applied exactly by evaluating the analytic
  waveform at shifted times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK, SPEED_OF_LIGHT_M_S, antenna_pattern, time_delay_from_geocenter

MSUN_S = 4.925490947641267e-6  # G * M_sun / c^3 in seconds (IAU nominal solar mass parameter)
MPC_M = 3.0856775814913673e22  # one megaparsec in metres

FS_HZ = 2048.0
N_SAMPLES = 4096
F_LOW_HZ = 20.0
TAPER_ON_S = 0.1
T_START_MIN_S = 0.05  # earliest geocentric start: keeps every detector's taper-on inside the window


# ----------------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class SourceParams:
    """One compact binary as injected.

    ``m1 >= m2`` (solar masses, detector frame); ``ra``, ``dec``, ``psi``, ``inclination``, ``phase`` (GW phase
    at coalescence), ``gmst`` in radians; ``tc`` geocentric coalescence time in seconds from the window start;
    ``distance_mpc`` luminosity distance in Mpc (sets the amplitude); ``f_low`` waveform start frequency in Hz.
    """

    m1: float
    m2: float
    ra: float
    dec: float
    psi: float
    inclination: float
    phase: float
    tc: float
    gmst: float
    distance_mpc: float
    f_low: float = F_LOW_HZ

    @property
    def chirp_mass(self) -> float:
        """Chirp mass in solar masses."""
        return chirp_mass(self.m1, self.m2)

    @property
    def total_mass(self) -> float:
        """Total mass in solar masses."""
        return self.m1 + self.m2

    @classmethod
    def from_mapping(cls, row: Mapping[str, object]) -> SourceParams:
        """Parameters from a mapping such as an ``injections.csv`` row (strings are parsed; extra keys ignored)."""
        values = {}
        for field in fields(cls):
            if field.name not in row:
                if field.name == "f_low":
                    continue
                raise ValueError(f"injection row {row.get('id', '?')!r} lacks {field.name!r}")
            raw = row[field.name]
            if raw is None or raw == "":
                raise ValueError(f"injection row {row.get('id', '?')!r} has no {field.name!r} (a noise-only sample?)")
            values[field.name] = float(raw)
        return cls(**values)


def chirp_mass(m1, m2):
    """Chirp mass ``(m1 m2)^(3/5) / (m1 + m2)^(1/5)`` in the units of ``m1``, ``m2``."""
    return (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2


def isco_frequency(total_mass_msun):
    """GW frequency (Hz) at the Schwarzschild ISCO, ``c^3 / (6^1.5 pi G M)``, for total mass ``M`` in M_sun."""
    return 1.0 / (6.0**1.5 * math.pi * total_mass_msun * MSUN_S)


def time_to_coalescence(f_hz, chirp_mass_msun):
    """Newtonian time to coalescence (s) from GW frequency ``f_hz``: ``(5/256) (pi f)^(-8/3) (G Mc/c^3)^(-5/3)``."""
    mc_s = chirp_mass_msun * MSUN_S
    return 5.0 / 256.0 * (math.pi * np.asarray(f_hz, dtype=np.float64)) ** (-8.0 / 3.0) * mc_s ** (-5.0 / 3.0)


def _half_hann(u: np.ndarray) -> np.ndarray:
    """Rising half-Hann taper: 0 at ``u <= 0``, 1 at ``u >= 1``."""
    return 0.5 * (1.0 - np.cos(math.pi * np.clip(u, 0.0, 1.0)))


# ----------------------------------------------------------------------------------------------------------
# Waveform and projection


def inspiral_polarizations(t, params: SourceParams) -> tuple[np.ndarray, np.ndarray]:
    """Newtonian-chirp polarizations ``(h+, hx)`` at geocentric times ``t`` (s, any shape): float64, strain.

    With ``tau = tc - t`` and ``Mc`` the chirp mass in seconds (``G Mc / c^3``):
    ``f(tau) = (1/pi) (5 / (256 tau))^(3/8) Mc^(-5/8)``, ``Phi(tau) = phase - 2 (tau / (5 Mc))^(5/8)``,
    ``A = 4 c Mc^(5/3) (pi f)^(2/3) / D``, ``h+ = A (1 + cos^2 i)/2 cos Phi``, ``hx = A cos i sin Phi``.
    Non-zero from ``t_start = max(tc - tau(f_low), 0.05 s)`` (half-Hann taper on over 0.1 s) to the ISCO
    time ``tc - tau(f_isco)`` (half-Hann taper off over two ISCO cycles); the tapers shrink to a quarter of
    the signal for very short signals.
    """
    t = np.asarray(t, dtype=np.float64)
    mc_s = params.chirp_mass * MSUN_S
    f_end = isco_frequency(params.total_mass)
    if not params.f_low < f_end:
        raise ValueError(f"f_low {params.f_low} Hz is not below the ISCO frequency {f_end:.1f} Hz")
    if params.distance_mpc <= 0:
        raise ValueError(f"distance must be positive, got {params.distance_mpc} Mpc")
    t_end = params.tc - float(time_to_coalescence(f_end, params.chirp_mass))
    t_start = max(params.tc - float(time_to_coalescence(params.f_low, params.chirp_mass)), T_START_MIN_S)
    if not t_start < t_end:
        raise ValueError(f"signal ends (t={t_end:.3f} s) before it can start (t={t_start:.3f} s)")
    duration = t_end - t_start
    taper_on = min(TAPER_ON_S, 0.25 * duration)
    taper_off = min(2.0 / f_end, 0.25 * duration)

    # Phase, amplitude and tapers on the support only (tau stays positive).
    support = (t >= t_start) & (t <= t_end)
    ts = t[support]
    tau = params.tc - ts
    freq = (5.0 / (256.0 * tau)) ** 0.375 * mc_s**-0.625 / math.pi
    phi = params.phase - 2.0 * (tau / (5.0 * mc_s)) ** 0.625
    amp = 4.0 * SPEED_OF_LIGHT_M_S * mc_s ** (5.0 / 3.0) * (math.pi * freq) ** (2.0 / 3.0)
    amp *= _half_hann((ts - t_start) / taper_on) * _half_hann((t_end - ts) / taper_off)
    amp /= params.distance_mpc * MPC_M

    cosi = math.cos(params.inclination)
    hplus = np.zeros(t.shape, dtype=np.float64)
    hcross = np.zeros(t.shape, dtype=np.float64)
    hplus[support] = amp * (0.5 * (1.0 + cosi * cosi)) * np.cos(phi)
    hcross[support] = amp * cosi * np.sin(phi)
    return hplus, hcross


def project_to_detectors(
    params: SourceParams,
    fs: float = FS_HZ,
    n_samples: int = N_SAMPLES,
    detectors: Sequence[str] = NETWORK,
) -> np.ndarray:
    """Detector strains of ``params`` sampled at ``t = k / fs``: (len(detectors), n_samples) float64.

    Row ``d`` is ``F+_d h+(t - dt_d) + Fx_d hx(t - dt_d)``, ``dt_d`` the geocenter-to-detector delay.
    """
    if isco_frequency(params.total_mass) >= fs / 2:
        raise ValueError(f"ISCO frequency of M={params.total_mass} M_sun is above Nyquist ({fs / 2} Hz)")
    t = np.arange(n_samples, dtype=np.float64) / fs
    out = np.empty((len(detectors), n_samples), dtype=np.float64)
    for row, det in enumerate(detectors):
        fplus, fcross = antenna_pattern(det, params.ra, params.dec, params.psi, params.gmst)
        delay = float(time_delay_from_geocenter(det, params.ra, params.dec, params.gmst))
        hplus, hcross = inspiral_polarizations(t - delay, params)
        out[row] = float(fplus) * hplus + float(fcross) * hcross
    return out


def render_injection(
    params: SourceParams | Mapping[str, object], fs: float = FS_HZ, n_samples: int = N_SAMPLES
) -> np.ndarray:
    """The noise-free injected strain of one truth-table row (``SourceParams`` or an ``injections.csv`` row):
    (3, n_samples) float64, rows H1, L1, V1, sampled at ``fs`` Hz. Equals the injected signal bit for bit."""
    if not isinstance(params, SourceParams):
        params = SourceParams.from_mapping(params)
    return project_to_detectors(params, fs, n_samples, NETWORK)
