"""Transient noise artefacts ("glitches") of the G2Net sample generator: sine-Gaussians and blips.

Topic: short non-Gaussian bursts added to single detectors, never coincident by construction, so a search that
demands coherence across detectors should reject them and one that does not is fooled. Units: time in seconds
from the window start, frequency in Hz, SNR the single-detector optimal SNR ``sqrt(<g, g>)`` with the detector's
model PSD (``noise.optimal_snr``, the generator's ``psd_model``, ``f >= f_low``): the same SNR as the
injections'.

Waveform (both kinds): ``g(t) = A exp(-(t - t0)^2 / tau^2) sin(2 pi f0 (t - t0) + phi)`` with
``tau = Q / (sqrt(2) pi f0)`` (the LIGO sine-Gaussian convention), ``A`` solved for the drawn SNR.

* ``sine_gaussian``: ``Q`` uniform in ``sine_gaussian_q`` (default 5-20), ``f0`` log-uniform in
  ``sine_gaussian_freq`` (30-500 Hz): narrow-band, ~10-100 ms.
* ``blip``: ``Q`` uniform in ``blip_q`` (2-5), ``f0`` log-uniform in ``blip_freq`` (30-250 Hz): a few ms,
  broadband, the most common LIGO glitch class and the one most like a short high-mass merger.

Rate: each detector of each example independently carries one glitch with probability ``rate``; the kind is
uniform over ``kinds``, ``t0`` uniform in ``time_range``, ``phi`` uniform, the SNR uniform in ``snr_range``.
Draws come from their own random stream, so turning glitches on does not change an example's noise or signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK
from transforms.recipes.g2net.noise import optimal_snr
from transforms.recipes.g2net.psd_models import network_psd
from transforms.recipes.g2net.waveform import F_LOW_HZ, FS_HZ, N_SAMPLES

GLITCH_KINDS = ("sine_gaussian", "blip")
GLITCH_COLUMNS = ("id", "detector", "kind", "time", "frequency_hz", "q", "snr", "phase")


@dataclass(frozen=True)
class GlitchSpec:
    """Glitch rate and priors (module doc); ``rate = 0`` (the default) adds none."""

    rate: float = 0.0
    snr_range: tuple[float, float] = (6.0, 30.0)
    kinds: tuple[str, ...] = GLITCH_KINDS
    time_range: tuple[float, float] = (0.2, 1.8)
    sine_gaussian_q: tuple[float, float] = (5.0, 20.0)
    sine_gaussian_freq: tuple[float, float] = (30.0, 500.0)
    blip_q: tuple[float, float] = (2.0, 5.0)
    blip_freq: tuple[float, float] = (30.0, 250.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"glitch rate must be a probability in [0, 1], got {self.rate}")
        if not self.kinds or any(k not in GLITCH_KINDS for k in self.kinds):
            raise ValueError(f"glitch kinds must be a non-empty subset of {GLITCH_KINDS}, got {self.kinds}")
        for name in ("snr_range", "time_range", "sine_gaussian_q", "sine_gaussian_freq", "blip_q", "blip_freq"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"glitch {name} must satisfy 0 < min <= max, got {(low, high)}")

    def ranges(self, kind: str) -> tuple[tuple[float, float], tuple[float, float]]:
        """(Q range, frequency range) of ``kind``."""
        if kind == "blip":
            return self.blip_q, self.blip_freq
        return self.sine_gaussian_q, self.sine_gaussian_freq


@dataclass(frozen=True)
class Glitch:
    """One glitch: its detector (``NETWORK`` name), kind, peak time ``time`` (s), ``frequency_hz``, ``q``, ``snr``
    (single-detector optimal SNR) and ``phase`` (rad)."""

    detector: str
    kind: str
    time: float
    frequency_hz: float
    q: float
    snr: float
    phase: float


def sine_gaussian(
    time: float, frequency_hz: float, q: float, phase: float = 0.0, fs: float = FS_HZ, n_samples: int = N_SAMPLES
) -> np.ndarray:
    """Unit-amplitude sine-Gaussian ``exp(-(t - time)^2 / tau^2) sin(2 pi f (t - time) + phase)``,
    ``tau = q / (sqrt(2) pi f)``, on ``t = arange(n_samples) / fs``: (n_samples,) float64."""
    t = np.arange(n_samples) / fs - time
    tau = q / (math.sqrt(2.0) * math.pi * frequency_hz)
    return np.exp(-((t / tau) ** 2)) * np.sin(2.0 * math.pi * frequency_hz * t + phase)


def glitch_waveform(glitch: Glitch, psd: np.ndarray, fs: float = FS_HZ, n_samples: int = N_SAMPLES, f_low=F_LOW_HZ):
    """The strain of ``glitch`` in its detector, scaled to optimal SNR ``glitch.snr`` against ``psd``
    ((n_samples // 2 + 1,) 1/Hz, that detector's PSD): (n_samples,) float64."""
    shape = sine_gaussian(glitch.time, glitch.frequency_hz, glitch.q, glitch.phase, fs, n_samples)
    unit = float(optimal_snr(shape, psd, fs, f_low))
    if not unit > 0:
        raise ValueError(f"glitch {glitch} has no power above {f_low} Hz")
    return shape * (glitch.snr / unit)


def draw_glitches(rng: np.random.Generator, spec: GlitchSpec, detectors: tuple[str, ...] = NETWORK) -> list[Glitch]:
    """The glitches of one example: each detector independently gets one with probability ``spec.rate``."""
    out = []
    for detector in detectors:
        # Every draw is made whether or not the detector glitches, so one detector's outcome never shifts another's.
        hit, kind_u, time_u, freq_u, q_u, snr_u, phase_u = rng.uniform(size=7)
        kind = spec.kinds[min(int(kind_u * len(spec.kinds)), len(spec.kinds) - 1)]
        (q_lo, q_hi), (f_lo, f_hi) = spec.ranges(kind)
        if hit >= spec.rate:
            continue
        out.append(
            Glitch(
                detector=detector,
                kind=kind,
                time=float(spec.time_range[0] + time_u * (spec.time_range[1] - spec.time_range[0])),
                frequency_hz=float(math.exp(math.log(f_lo) + freq_u * (math.log(f_hi) - math.log(f_lo)))),
                q=float(q_lo + q_u * (q_hi - q_lo)),
                snr=float(spec.snr_range[0] + snr_u * (spec.snr_range[1] - spec.snr_range[0])),
                phase=float(2.0 * math.pi * phase_u),
            )
        )
    return out


def render_glitches(
    glitches: list[Glitch],
    fs: float = FS_HZ,
    n_samples: int = N_SAMPLES,
    psd_model: str = "design",
    f_low: float = F_LOW_HZ,
    detectors: tuple[str, ...] = NETWORK,
) -> np.ndarray:
    """The glitches' strain, one row per detector: (len(detectors), n_samples) float64 (zero rows without)."""
    out = np.zeros((len(detectors), n_samples))
    if not glitches:
        return out
    psd = network_psd(detectors, n_samples, fs, psd_model)
    for glitch in glitches:
        row = detectors.index(glitch.detector)
        out[row] += glitch_waveform(glitch, psd[row], fs, n_samples, f_low)
    return out


def truth_rows(sample_id: str, glitches: list[Glitch]) -> list[dict[str, str]]:
    """``glitches.csv`` rows (``GLITCH_COLUMNS``, floats as ``repr``) of one example."""
    return [
        {
            "id": sample_id,
            "detector": g.detector,
            "kind": g.kind,
            **{k: repr(float(getattr(g, k))) for k in ("time", "frequency_hz", "q", "snr", "phase")},
        }
        for g in glitches
    ]
