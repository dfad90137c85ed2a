"""Realistic G2Net-style sample data: design-curve detector noise plus projected compact-binary chirps.

The output reproduces the raw layout of the Kaggle "G2Net Gravitational Wave Detection" data set::

    OUT/train/{id[0]}/{id[1]}/{id[2]}/{id}.npy   strain: (3, 4096) float64, rows H1, L1, V1; 2 s at 2048 Hz
    OUT/training_labels.csv                      id,target,source_id
    OUT/injections.csv                           truth table, one row per sample (INJECTION_COLUMNS)

Physics (all numpy, no LAL):

* Noise: Gaussian, stationary, coloured by the analytic design PSDs of ``transforms.psd_models`` (aLIGO for
  H1/L1, AdVirgo for V1), drawn in the frequency domain on a 4x longer segment whose middle is kept, so the
  2-s window is not periodic. Raw strain std is ~7e-22 (H1, L1) and ~9e-22 (V1), set by the < 20 Hz band.
* Signal: leading-order post-Newtonian ("Newtonian chirp") inspiral, quadrupole amplitude ~ f^(2/3), from
  ``f_low`` (20 Hz, or the window start, with a smooth taper on) to the Schwarzschild ISCO frequency
  ``c^3 / (6^1.5 pi G M)`` (smooth taper off). ``tc`` is the Newtonian coalescence time at the geocenter,
  where ``f`` would diverge; the waveform ends slightly earlier, at the ISCO.
* Projection: ``h_d(t) = F+ h+(t - dt_d) + Fx hx(t - dt_d)`` with the LAL antenna patterns and geocenter
  delays of ``transforms.detectors``; the delay is applied exactly by evaluating the analytic waveform at
  shifted times.
* Loudness: the distance is chosen so that the network optimal SNR (design PSDs, ``f >= f_low``) equals a
  target drawn uniformly from ``snr_range``.

Randomness is ``numpy.random.default_rng`` over ``SeedSequence(seed, spawn_key=(stream, index))``: the noise of
sample ``i`` and the parameters of source ``j`` can be made independently of every other sample (parallel
safe), and the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK, SPEED_OF_LIGHT_M_S, antenna_pattern, time_delay_from_geocenter
from transforms.recipes.g2net.psd_models import DEFAULT_LOW_CUTOFF_HZ, design_psd

logger = logging.getLogger(__name__)

MSUN_S = 4.925490947641267e-6  # G * M_sun / c^3 in seconds (IAU nominal solar mass parameter)
MPC_M = 3.0856775814913673e22  # one megaparsec in metres

FS_HZ = 2048.0
N_SAMPLES = 4096
F_LOW_HZ = 20.0
TAPER_ON_S = 0.1
T_START_MIN_S = 0.05  # earliest geocentric start: keeps every detector's taper-on inside the window
FIDUCIAL_DISTANCE_MPC = 1000.0

# Random streams of SeedSequence(seed, spawn_key=(stream, index)).
_NOISE_STREAM = 0
_SOURCE_STREAM = 1
_PLAN_STREAM = 2

LABEL_COLUMNS = ("id", "target", "source_id")
INJECTION_COLUMNS = (
    "id",
    "source_id",
    "target",
    "snr",
    "snr_h1",
    "snr_l1",
    "snr_v1",
    "m1",
    "m2",
    "chirp_mass",
    "ra",
    "dec",
    "psi",
    "inclination",
    "phase",
    "tc",
    "gmst",
    "distance_mpc",
    "f_low",
)


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
# Waveform, projection, SNR


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
    periodic. ``psd_fn`` must be finite at f = 0 (see ``transforms.psd_models``).
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


# ----------------------------------------------------------------------------------------------------------
# Samples


@dataclass(frozen=True)
class SampleSpec:
    """Generator settings: strain (3, n_samples) at ``fs`` Hz; SNR, masses (M_sun) and ``tc`` (s) ranges."""

    fs: float = FS_HZ
    n_samples: int = N_SAMPLES
    f_low: float = F_LOW_HZ
    snr_range: tuple[float, float] = (4.0, 20.0)
    mass_range: tuple[float, float] = (10.0, 50.0)
    tc_range: tuple[float, float] = (1.2, 1.8)

    def __post_init__(self) -> None:
        for name in ("snr_range", "mass_range", "tc_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < min <= max, got {(low, high)}")
        duration = self.n_samples / self.fs
        if self.tc_range[1] + 0.03 > duration:
            raise ValueError(f"tc_range {self.tc_range} leaves no room for light travel in {duration} s")
        if isco_frequency(2 * self.mass_range[0]) >= self.fs / 2:
            raise ValueError(f"mass_range {self.mass_range} reaches ISCO frequencies above Nyquist")
        if isco_frequency(2 * self.mass_range[1]) <= self.f_low:
            raise ValueError(f"mass_range {self.mass_range} ends below f_low={self.f_low} Hz at ISCO")


@dataclass(frozen=True)
class SamplePlan:
    """Where sample ``index`` sits: its 10-hex ``id``, label ``target`` (0/1), its group key ``source_id`` and,
    for positives, the index of the source it carries (``source_index = -1`` for noise)."""

    index: int
    id: str
    target: int
    source_id: str
    source_index: int


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def draw_source(rng: np.random.Generator, spec: SampleSpec = SampleSpec()) -> tuple[SourceParams, np.ndarray]:
    """Random source with network optimal SNR drawn from ``spec.snr_range``.

    Returns the parameters and the per-detector optimal SNRs (3,) float64 (H1, L1, V1). Masses are uniform in
    ``mass_range`` (sorted so ``m1 >= m2``), the sky isotropic, orientation uniform, ``tc`` uniform in
    ``tc_range``; the distance is solved for from the SNR.
    """
    m_a, m_b = rng.uniform(*spec.mass_range, size=2)
    fiducial = SourceParams(
        m1=float(max(m_a, m_b)),
        m2=float(min(m_a, m_b)),
        ra=float(rng.uniform(0.0, 2.0 * math.pi)),
        dec=float(np.arcsin(rng.uniform(-1.0, 1.0))),
        psi=float(rng.uniform(0.0, math.pi)),
        inclination=float(np.arccos(rng.uniform(-1.0, 1.0))),
        phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        tc=float(rng.uniform(*spec.tc_range)),
        gmst=float(rng.uniform(0.0, 2.0 * math.pi)),
        distance_mpc=FIDUCIAL_DISTANCE_MPC,
        f_low=spec.f_low,
    )
    target_snr = float(rng.uniform(*spec.snr_range))
    psd = network_psd(spec.fs, spec.n_samples)
    snrs = optimal_snr(render_injection(fiducial, spec.fs, spec.n_samples), psd, spec.fs, spec.f_low)
    network = float(np.sqrt(np.sum(snrs**2)))
    params = SourceParams(**{**asdict(fiducial), "distance_mpc": FIDUCIAL_DISTANCE_MPC * network / target_snr})
    return params, snrs * (target_snr / network)


def _sample_id(seed: int, index: int, attempt: int) -> str:
    return hashlib.sha256(f"sigforge-g2net:{seed}:{index}:{attempt}".encode()).hexdigest()[:10]


def plan_samples(n: int, seed: int, signals_per_source: int = 1, positive_fraction: float = 0.5) -> list[SamplePlan]:
    """Ids, labels and groups of ``n`` samples, deterministic in ``seed``.

    ``round(n * positive_fraction)`` samples, at positions chosen by a seeded permutation, are positives; they
    are dealt in order to sources, ``signals_per_source`` each (the last source may get fewer). A source's
    ``source_id`` is the id of its lowest-index sample; a noise sample is its own group (``source_id = id``).
    """
    if n < 1 or signals_per_source < 1 or not 0.0 <= positive_fraction <= 1.0 or seed < 0:
        raise ValueError(
            f"need n >= 1, signals_per_source >= 1, 0 <= positive_fraction <= 1, seed >= 0; got "
            f"{n}, {signals_per_source}, {positive_fraction}, {seed}"
        )
    ids: list[str] = []
    seen: set[str] = set()
    for index in range(n):
        attempt = 0
        while (sample_id := _sample_id(seed, index, attempt)) in seen:
            attempt += 1
        seen.add(sample_id)
        ids.append(sample_id)

    n_pos = int(round(n * positive_fraction))
    order = _rng(seed, _PLAN_STREAM, 0).permutation(n)
    source_of = np.full(n, -1, dtype=np.int64)
    source_of[order[:n_pos]] = np.arange(n_pos) // signals_per_source
    first_index: dict[int, int] = {}
    for index in range(n):
        if source_of[index] >= 0:
            first_index.setdefault(int(source_of[index]), index)
    return [
        SamplePlan(
            index=index,
            id=ids[index],
            target=int(source_of[index] >= 0),
            source_id=ids[first_index[int(source_of[index])]] if source_of[index] >= 0 else ids[index],
            source_index=int(source_of[index]),
        )
        for index in range(n)
    ]


def make_noise(seed: int, index: int, spec: SampleSpec = SampleSpec()) -> np.ndarray:
    """The noise of sample ``index`` for ``seed``: (3, n_samples) float64 strain at ``spec.fs`` Hz."""
    return network_noise(_rng(seed, _NOISE_STREAM, index), spec.fs, spec.n_samples)


def make_source(seed: int, source_index: int, spec: SampleSpec = SampleSpec()) -> tuple[SourceParams, np.ndarray]:
    """Source ``source_index`` for ``seed``: parameters and per-detector SNRs (3,), see ``draw_source``."""
    return draw_source(_rng(seed, _SOURCE_STREAM, source_index), spec)


def _fmt(value: float) -> str:
    return repr(float(value))


def make_sample(plan: SamplePlan, seed: int, spec: SampleSpec = SampleSpec()) -> tuple[np.ndarray, dict[str, str]]:
    """Strain and truth row of one planned sample.

    Returns ``strain``: (3, n_samples) float64 (H1, L1, V1) at ``spec.fs`` Hz, noise plus, for positives, the
    injected signal; and the ``injections.csv`` row (dict of strings keyed by ``INJECTION_COLUMNS``; floats
    written with ``repr`` so they round-trip exactly).
    """
    strain = make_noise(seed, plan.index, spec)
    row = dict.fromkeys(INJECTION_COLUMNS, "")
    row.update(id=plan.id, source_id=plan.source_id, target=str(plan.target))
    if plan.target:
        params, snrs = make_source(seed, plan.source_index, spec)
        strain += render_injection(params, spec.fs, spec.n_samples)
        row.update({name: _fmt(value) for name, value in asdict(params).items()})
        row.update(
            snr=_fmt(np.sqrt(np.sum(snrs**2))),
            snr_h1=_fmt(snrs[0]),
            snr_l1=_fmt(snrs[1]),
            snr_v1=_fmt(snrs[2]),
            chirp_mass=_fmt(params.chirp_mass),
        )
    else:
        row.update(snr="0.0", snr_h1="0.0", snr_l1="0.0", snr_v1="0.0")
    return strain, row


def sample_path(out_dir: str, sample_id: str) -> str:
    """Kaggle path of one sample: ``OUT/train/{id[0]}/{id[1]}/{id[2]}/{id}.npy``."""
    return os.path.join(out_dir, "train", sample_id[0], sample_id[1], sample_id[2], f"{sample_id}.npy")


def _write_csv(path: str, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write a CSV atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_g2net_sample(
    out_dir: str,
    n: int,
    seed: int,
    signals_per_source: int = 1,
    positive_fraction: float = 0.5,
    snr_range: tuple[float, float] = (4.0, 20.0),
    *,
    mass_range: tuple[float, float] = (10.0, 50.0),
    tc_range: tuple[float, float] = (1.2, 1.8),
    overwrite: bool = False,
) -> dict:
    """Write ``n`` G2Net-layout samples to ``out_dir`` (local path) and return a summary.

    Files: ``train/{id[0]}/{id[1]}/{id[2]}/{id}.npy`` (strain (3, 4096) float64, H1/L1/V1, 2048 Hz),
    ``training_labels.csv`` (``id,target,source_id``) and ``injections.csv`` (``INJECTION_COLUMNS``; noise rows
    have SNR 0.0 and empty source parameters), all in sample-index order. With ``signals_per_source = K``
    each positive source (one waveform and sky position) is injected into K independent noise draws sharing
    one ``source_id``; noise samples are their own group. The CSVs are written last, so a folder with
    ``training_labels.csv`` is complete. Refuses an existing ``training_labels.csv`` unless ``overwrite``.

    Returns ``{"n", "positives", "sources", "seed", "signals_per_source", "train_dir", "labels_csv",
    "injections_csv"}``.
    """
    spec = SampleSpec(snr_range=tuple(snr_range), mass_range=tuple(mass_range), tc_range=tuple(tc_range))
    labels_csv = os.path.join(out_dir, "training_labels.csv")
    injections_csv = os.path.join(out_dir, "injections.csv")
    train_dir = os.path.join(out_dir, "train")
    if os.path.exists(labels_csv):
        if not overwrite:
            raise FileExistsError(f"{labels_csv} exists; pass overwrite=True to replace the sample")
        shutil.rmtree(train_dir, ignore_errors=True)

    started = time.perf_counter()
    plans = plan_samples(n, seed, signals_per_source, positive_fraction)
    rows = []
    made_dirs: set[str] = set()
    for plan in plans:
        strain, row = make_sample(plan, seed, spec)
        path = sample_path(out_dir, plan.id)
        if (folder := os.path.dirname(path)) not in made_dirs:
            os.makedirs(folder, exist_ok=True)
            made_dirs.add(folder)
        np.save(path, strain)
        rows.append(row)
    _write_csv(injections_csv, INJECTION_COLUMNS, rows)
    _write_csv(labels_csv, LABEL_COLUMNS, [{k: row[k] for k in LABEL_COLUMNS} for row in rows])

    positives = sum(plan.target for plan in plans)
    sources = len({plan.source_index for plan in plans if plan.target})
    logger.info(
        "wrote %d G2Net samples (%d positive from %d sources, seed %d) to %s in %.1f s",
        n,
        positives,
        sources,
        seed,
        out_dir,
        time.perf_counter() - started,
    )
    return {
        "n": n,
        "positives": positives,
        "sources": sources,
        "seed": seed,
        "signals_per_source": signals_per_source,
        "train_dir": train_dir,
        "labels_csv": labels_csv,
        "injections_csv": injections_csv,
    }
