"""Frequency-domain matched filter for G2Net-style strain: template bank, complex SNR, network statistic.

Pure numpy/scipy (no Beam, no TensorFlow). Strain is ``(n_detectors, n_samples)`` float64 at ``fs`` Hz (G2Net:
``(3, 4096)``, rows H1, L1, V1, 2 s at 2048 Hz); PSDs are one-sided, 1/Hz, on ``rfftfreq(n_samples, 1/fs)``.

Pipeline for one sample (``MatchedFilter.score``):

1. **Conditioning** (``condition``): a Tukey window (``tukey_alpha``, default 0.1: 0.1 s tapers at each end of
   a 2-s segment). The generator crops its noise from a 4x longer draw, so the segment is not periodic; without
   the taper, the edge discontinuity leaks the large sub-20-Hz power into the band (``|z|^2`` of V1 noise ~10 %
   too large for the longest templates with the design PSD); with it the excess is at the percent level.
2. **Complex SNR per detector and template** (``complex_snr`` = ``snr_filters`` + ``apply_filters``): with
   ``D = rfft(x) / fs``, template ``H = rfft(h) / fs``, PSD ``S`` and ``df = fs / n``,
   ``z(t_k) = 4 df sum_{f_low <= f <= f_high} D(f) H*(f) / S(f) exp(2 pi i f t_k) / sigma``,
   ``sigma^2 = 4 df sum |H|^2 / S``. Summing positive frequencies only makes ``z`` complex: its real part is the
   correlation with the template ``h`` (cosine phase) shifted by ``t_k`` and its imaginary part the correlation with
   the quadrature template (every frequency component rotated by 90 degrees, the sine phase). Both have unit
   variance in Gaussian noise of PSD ``S`` and are independent, so ``|z|^2`` is chi-squared with 2 degrees of
   freedom at every lag, and ``|z|`` is the SNR maximized analytically over the coalescence phase. Lags are
   circular (one FFT per template): lag ``k`` places the template's coalescence at ``tc_ref + k / fs`` (mod the
   segment length).
3. **Network statistic** (``network_statistic``): for template ``j`` with per-detector ``rho_d^2(t) = |z_{d,j}(t)|^2``
   (``t`` = coalescence time at the detector),

       stat = max_j max_{t in T} [ rho_H1^2(t) + sum_{d != H1} max_{|dt| <= Delta_d} rho_d^2(t + dt) ]

   with ``Delta_d`` the light-travel time from H1 to detector ``d`` (10.0 ms for L1, 27.3 ms for V1) plus
   ``delay_margin_s``, and ``T`` the searched H1 coalescence times: ``tc_range`` (geocentric) widened by the
   Earth-radius light time (21.3 ms). The same template is used in every detector; the detectors' amplitudes and
   phases are free (each is maximized separately), so for Gaussian noise at one fixed time and template the sum
   is chi-squared with 6 degrees of freedom (2 per detector), before the maxima over lags and templates.
   The score is ``sqrt(stat)``, a network SNR.

Template family: aligned-spin IMRPhenomD from LALSimulation (``pycbc.waveform.get_td_waveform``, face-on ``h+``;
``hx`` is then its sine-phase partner), merger at ``tc_ref``, cut at the segment start like the injected
signals. Templates are placed over (m1, m2, spin1z, spin2z): ``make_bank`` draws seeded candidates uniformly in
the generator's mass square and aligned-spin box and keeps ``n_templates`` of them by farthest-point placement in
the match metric (each new template is the candidate least well matched by the bank so far); its
``minimal_match`` is the worst match of any candidate with the bank (maximized over time and phase), measured
with the bank's PSD. The PSDs are ``pycbc.psd``'s (``transforms.recipes.g2net.psd_models``) or estimated from
noise. ``complex_snr`` equals ``pycbc.filter.matched_filter`` on the same template, data and PSD (tested); this
module batches it over templates and detectors (one FFT per template and detector).

Known losses: the bank's discreteness (``minimal_match``); precession and higher modes when the data carry
them (the bank is aligned-spin, dominant mode); templates are cut at the segment start like the injected
signals, so a template shifted by ``k`` lags misses (or wraps round to the segment end) ``|k| / fs`` seconds of
its lowest-frequency part, ``|k| <= 0.32 s`` for the default ``tc_range``; lags are whole samples (0.49 ms at
2048 Hz); only geocentric ``tc`` in ``tc_range`` is searched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from transforms.recipes.g2net import signal as sig
from transforms.recipes.g2net.detectors import EARTH_LIGHT_TIME_S, NETWORK, light_travel_time
from transforms.recipes.g2net.priors import SampleSpec
from transforms.recipes.g2net.psd_models import network_psd
from transforms.recipes.g2net.waveform import FS_HZ, N_SAMPLES, SourceParams, place, polarizations

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchedFilterConfig:
    """Settings of the search. Times in seconds from the segment start, frequencies in Hz, masses in M_sun.

    ``tc_range``: geocentric coalescence times searched (default: the generator's ``SampleSpec.tc_range``).
    ``mass_range``, ``spin_max``: component masses and aligned spins ``|spin{1,2}z| <= spin_max`` covered by
    the bank (default: the generator's). ``f_low``, ``f_high``: matched-filter integration band.
    ``template_f_low``: templates start at this GW frequency (or at the segment start, like the generator's
    signals). ``approximant``: the (aligned-spin) template family. ``psd_model``: the ``pycbc.psd`` curves of
    ``design_psds``.
    """

    fs: float = FS_HZ
    n_samples: int = N_SAMPLES
    detectors: tuple[str, ...] = NETWORK
    f_low: float = 20.0
    f_high: float = 1000.0
    tukey_alpha: float = 0.1
    tc_range: tuple[float, float] = SampleSpec().tc_range
    mass_range: tuple[float, float] = SampleSpec().mass_range
    spin_max: float = SampleSpec().spin_max
    delay_margin_s: float = 1.0 / FS_HZ
    template_f_low: float = SampleSpec().f_low
    approximant: str = "IMRPhenomD"
    psd_model: str = "design"

    def __post_init__(self) -> None:
        duration = self.n_samples / self.fs
        if not 0.0 < self.f_low < self.f_high <= self.fs / 2:
            raise ValueError(f"need 0 < f_low < f_high <= fs/2, got {self.f_low}, {self.f_high}, fs={self.fs}")
        lo, hi = self.tc_range
        if not 0.0 <= lo <= hi <= duration:
            raise ValueError(f"tc_range {self.tc_range} must lie in [0, {duration}] s")
        if not 0.0 < self.mass_range[0] <= self.mass_range[1]:
            raise ValueError(f"mass_range must satisfy 0 < min <= max, got {self.mass_range}")
        if not 0.0 <= self.spin_max < 1.0:
            raise ValueError(f"spin_max must lie in [0, 1), got {self.spin_max}")
        for det in self.detectors:
            if det not in NETWORK:
                raise ValueError(f"unknown detector {det!r}")

    @property
    def freqs(self) -> np.ndarray:
        """rfft frequencies (n_samples // 2 + 1,) Hz."""
        return sig.rfft_freqs(self.n_samples, self.fs)

    @property
    def band(self) -> np.ndarray:
        """Boolean (n_samples // 2 + 1,) mask of the integration band ``f_low <= f <= f_high``."""
        f = self.freqs
        return (f >= self.f_low) & (f <= self.f_high)

    @property
    def tc_ref(self) -> float:
        """Coalescence time (s) at which templates are generated: the middle of ``tc_range``, on a sample."""
        return round(0.5 * (self.tc_range[0] + self.tc_range[1]) * self.fs) / self.fs


# ----------------------------------------------------------------------------------------------------------
# Conditioning and PSDs


def condition(strain, cfg: MatchedFilterConfig = MatchedFilterConfig()) -> np.ndarray:
    """Tukey-windowed strain: (n_det, n_samples) -> (n_det, n_samples) float64 (``cfg.tukey_alpha``)."""
    x = np.asarray(strain, dtype=np.float64)
    if x.shape[-1] != cfg.n_samples:
        raise ValueError(f"expected {cfg.n_samples} samples per detector, got shape {x.shape}")
    return sig.apply_tukey(x, cfg.tukey_alpha)


def design_psds(cfg: MatchedFilterConfig = MatchedFilterConfig()) -> np.ndarray:
    """The ``cfg.psd_model`` PSDs of ``pycbc.psd`` (``transforms.recipes.g2net.psd_models``, the generator's
    noise) per detector on the rfft grid: (n_det, n_freq) float64, 1/Hz."""
    return np.array(network_psd(tuple(cfg.detectors), cfg.n_samples, cfg.fs, cfg.psd_model))


def estimate_psd(noise_strains: Iterable[np.ndarray], cfg: MatchedFilterConfig = MatchedFilterConfig()) -> np.ndarray:
    """Average PSD of noise-only samples: (n_det, n_freq) float64, 1/Hz, on the rfft grid.

    Welch's method with one segment per sample: the periodogram of each sample (``(n_det, n_samples)`` strain)
    with the conditioning's Tukey window (``transforms.recipes.g2net.signal.periodogram_psd``, normalized by the
    window's power, so it estimates the PSD of the untapered data, which is what the filter's normalization needs),
    averaged over the samples. It has the same window leakage as the data the filter sees. Per-bin relative error
    ``~1 / sqrt(n_samples_averaged)``. Raises ValueError when ``noise_strains`` is empty.
    """
    window = sig.tukey_window(cfg.n_samples, cfg.tukey_alpha)
    total, count = None, 0
    for strain in noise_strains:
        _, psd = sig.periodogram_psd(np.asarray(strain, dtype=np.float64), cfg.fs, window=window)
        total = psd if total is None else total + psd
        count += 1
    if count == 0:
        raise ValueError("no noise-only samples to estimate the PSD from")
    return total / count


# ----------------------------------------------------------------------------------------------------------
# Templates


def template_spectrum(
    m1: float, m2: float, spin1z: float = 0.0, spin2z: float = 0.0, cfg: MatchedFilterConfig = MatchedFilterConfig()
) -> np.ndarray:
    """Cosine-phase template of (m1, m2) M_sun with aligned spins, merging at ``cfg.tc_ref`` and cut at the
    segment start: ``rfft(h) / fs``, (n_freq,) complex. ``h`` is the face-on ``h+`` of ``cfg.approximant`` at
    an arbitrary distance (the filter normalizes it)."""
    params = SourceParams(
        m1=float(m1),
        m2=float(m2),
        spin1x=0.0,
        spin1y=0.0,
        spin1z=float(spin1z),
        spin2x=0.0,
        spin2y=0.0,
        spin2z=float(spin2z),
        ra=0.0,
        dec=0.0,
        psi=0.0,
        inclination=0.0,
        phase=0.0,
        tc=cfg.tc_ref,
        gps_time=0.0,
        distance_mpc=100.0,
        f_low=cfg.template_f_low,
        approximant=cfg.approximant,
    )
    hplus, _, t0 = polarizations(params, cfg.fs)
    return np.fft.rfft(place(hplus, t0, cfg.tc_ref, cfg.fs, cfg.n_samples)) / cfg.fs


@dataclass(frozen=True)
class TemplateBank:
    """Templates as spectra: ``params`` (n_templates, 4) = (m1, m2, spin1z, spin2z) (M_sun, m1 >= m2),
    ``spectra`` (n_templates, n_freq) complex (``template_spectrum``), ``minimal_match`` of the placement (NaN
    when not measured) over ``n_candidates`` candidates."""

    params: np.ndarray
    spectra: np.ndarray
    minimal_match: float = math.nan
    n_candidates: int = 0

    @property
    def chirp_masses(self) -> np.ndarray:
        """(n_templates,) chirp masses, M_sun."""
        m1, m2 = self.params[:, 0], self.params[:, 1]
        return (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2

    def __len__(self) -> int:
        return int(self.params.shape[0])


def _normalized(spectra: np.ndarray, psd: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Whitened, unit-norm templates on the band: ``H / sqrt(S) / ||H / sqrt(S)||``, (n, n_band) complex."""
    w = spectra[:, band] / np.sqrt(psd[band])
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def _matches(unit: np.ndarray, others: np.ndarray, band: np.ndarray, n: int, chunk: int = 256) -> np.ndarray:
    """Match of one unit template (n_band,) with each row of ``others`` (m, n_band), maximized over circular lag
    and phase: ``max_t |sum_f u conj(v) e^{2 pi i f t}|``; (m,) float64 in [0, 1] (complex64 FFTs)."""
    idx = np.flatnonzero(band)
    out = np.empty(others.shape[0])
    full = np.zeros((min(chunk, others.shape[0]), n), dtype=np.complex64)
    for start in range(0, others.shape[0], chunk):
        block = others[start : start + chunk]
        full[: block.shape[0], idx] = block * unit.conj()
        out[start : start + block.shape[0]] = np.abs(scipy.fft.fft(full[: block.shape[0]], axis=-1)).max(axis=-1)
    return out


def make_bank(
    n_templates: int,
    psd: np.ndarray,
    cfg: MatchedFilterConfig = MatchedFilterConfig(),
    *,
    seed: int = 0,
    n_candidates: int | None = None,
) -> TemplateBank:
    """Template bank over ``cfg.mass_range`` by farthest-point placement on seeded random candidates.

    Args:
      n_templates: bank size.
      psd: (n_freq,) one-sided PSD (1/Hz) defining the match (e.g. H1's).
      seed: seeds the candidate draw (``numpy.random.default_rng``); same seed, same bank.
      n_candidates: candidate count (default ``max(1500, 8 * n_templates)``), uniform in the mass square and the
        aligned-spin box ``[-spin_max, spin_max]^2``.

    Returns:
      A ``TemplateBank`` whose ``minimal_match`` is the smallest match of any candidate with its best template.
    """
    if n_templates < 1:
        raise ValueError(f"n_templates must be at least 1, got {n_templates}")
    n_candidates = int(n_candidates or max(1500, 8 * n_templates))
    if n_candidates < 2:
        raise ValueError(f"n_candidates must be at least 2, got {n_candidates}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    lo, hi = cfg.mass_range
    pairs = np.empty((n_candidates, 4))
    pairs[:, :2] = np.sort(rng.uniform(lo, hi, size=(n_candidates, 2)), axis=1)[:, ::-1]
    pairs[:, 2:] = rng.uniform(-cfg.spin_max, cfg.spin_max, size=(n_candidates, 2))
    # The two corners of the mass square (longest and shortest signals) are always candidates.
    pairs[:2] = [[lo, lo, -cfg.spin_max, -cfg.spin_max], [hi, hi, cfg.spin_max, cfg.spin_max]]
    spectra = np.stack([template_spectrum(*row, cfg=cfg) for row in pairs])
    band = cfg.band
    unit = _normalized(spectra, np.asarray(psd, dtype=np.float64), band).astype(np.complex64)
    best = np.full(len(pairs), -np.inf)
    chosen: list[int] = []
    nxt = 0  # the lightest equal-mass corner (the most cycles) first
    for _ in range(min(n_templates, len(pairs))):
        chosen.append(nxt)
        best = np.maximum(best, _matches(unit[nxt], unit, band, cfg.n_samples))
        nxt = int(np.argmin(best))
    minimal = float(best.min())
    logger.info("template bank: %d templates from %d candidates, minimal match %.3f", len(chosen), len(pairs), minimal)
    return TemplateBank(pairs[chosen], spectra[chosen], minimal_match=minimal, n_candidates=len(pairs))


def bank_from_params(
    params: Sequence[Sequence[float]], cfg: MatchedFilterConfig = MatchedFilterConfig()
) -> TemplateBank:
    """A bank of the given (m1, m2, spin1z, spin2z) rows (M_sun), no placement."""
    params = np.asarray(params, dtype=np.float64).reshape(-1, 4)
    return TemplateBank(params, np.stack([template_spectrum(*row, cfg=cfg) for row in params]))


# ----------------------------------------------------------------------------------------------------------
# Filtering


def snr_filters(templates: np.ndarray, psd: np.ndarray, cfg: MatchedFilterConfig) -> np.ndarray:
    """Frequency-domain filters ``4 df n conj(H) / (S sigma)`` on the band: (n_templates, n_det, n_band) complex.

    Args:
      templates: (n_templates, n_freq) complex ``rfft(h) / fs`` shared by all detectors, or
        (n_templates, n_det, n_freq) one per detector.
      psd: (n_det, n_freq) one-sided PSD, 1/Hz; finite and > 0 in the band.
    """
    idx = np.flatnonzero(cfg.band)
    s = np.asarray(psd, dtype=np.float64)[:, idx]
    if not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError("psd must be finite and > 0 inside the matched-filter band")
    h = np.asarray(templates)[..., idx]
    if h.ndim == 2:
        h = h[:, None, :]
    df = cfg.fs / cfg.n_samples
    sigma = np.sqrt(4.0 * df * np.sum(np.abs(h) ** 2 / s, axis=-1, keepdims=True))  # (n_templates, n_det, 1)
    return h.conj() / s * (4.0 * df * cfg.n_samples / sigma)


def apply_filters(data_spectrum: np.ndarray, filters: np.ndarray, cfg: MatchedFilterConfig) -> np.ndarray:
    """Complex SNR ``z`` (module doc): (n_templates, n_det, n_samples) complex128 from ``data_spectrum``
    (n_det, n_freq) = ``rfft(conditioned strain) / fs`` and ``snr_filters``. Index ``k`` of the last axis is the
    template's coalescence at ``tc_ref + k / fs`` (mod the segment length) at that detector."""
    idx = np.flatnonzero(cfg.band)
    full = np.zeros(filters.shape[:2] + (cfg.n_samples,), dtype=np.complex128)
    full[..., idx[0] : idx[-1] + 1] = filters * data_spectrum[:, idx]
    return scipy.fft.ifft(full, axis=-1, overwrite_x=True)


def complex_snr(strain: np.ndarray, templates: np.ndarray, psd: np.ndarray, cfg: MatchedFilterConfig) -> np.ndarray:
    """Complex SNR time series of raw ``strain`` (n_det, n_samples) for every template and detector:
    (n_templates, n_det, n_samples) complex128 (``condition`` -> ``snr_filters`` -> ``apply_filters``)."""
    data = np.fft.rfft(condition(strain, cfg), axis=-1) / cfg.fs
    return apply_filters(data, snr_filters(templates, psd, cfg), cfg)


def coincidence_half_widths(cfg: MatchedFilterConfig) -> list[int]:
    """Per detector, the half-width (samples) of its window around the reference (first) detector's time:
    ``ceil((light-travel time + delay_margin_s) fs)``, 0 for the reference."""
    ref = cfg.detectors[0]
    return [0] + [
        int(math.ceil((light_travel_time(ref, det) + cfg.delay_margin_s) * cfg.fs)) for det in cfg.detectors[1:]
    ]


def searched_lags(cfg: MatchedFilterConfig) -> np.ndarray:
    """Lags (samples, int, negative = before ``tc_ref``; circular) of the reference detector's searched
    coalescence times: ``tc_range`` widened by ``EARTH_LIGHT_TIME_S`` on both sides."""
    lo = cfg.tc_range[0] - EARTH_LIGHT_TIME_S - cfg.tc_ref
    hi = cfg.tc_range[1] + EARTH_LIGHT_TIME_S - cfg.tc_ref
    return np.arange(math.floor(lo * cfg.fs), math.ceil(hi * cfg.fs) + 1)


def network_statistic(rho2: np.ndarray, cfg: MatchedFilterConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network statistic of the module doc, per template.

    Args:
      rho2: (n_templates, n_det, n_samples) float64 ``|z|^2``; detector 0 is the reference.

    Returns:
      stat: (n_templates,) float64, max over the searched reference lags of the coincident sum.
      lag: (n_templates,) int, the reference lag index (0 <= lag < n_samples) of that maximum.
      peaks: (n_templates, n_det) float64, each detector's ``rho^2`` entering the maximum.
    """
    lags = searched_lags(cfg)
    halves = coincidence_half_widths(cfg)
    pad = max(halves)
    # Only the searched lags and their coincidence windows are needed: gather them once (circularly).
    span = np.arange(lags[0] - pad, lags[-1] + pad + 1) % cfg.n_samples
    sub = rho2[..., span]
    inner = slice(pad, pad + lags.size)
    per_det = np.empty(sub.shape[:2] + (lags.size,))
    for d, half in enumerate(halves):
        track = sub[:, d, :]
        if half:
            track = scipy.ndimage.maximum_filter1d(track, size=2 * half + 1, axis=-1, mode="nearest")
        per_det[:, d, :] = track[:, inner]
    total = per_det.sum(axis=1)
    best = np.argmax(total, axis=-1)
    rows = np.arange(total.shape[0])
    return total[rows, best], lags[best] % cfg.n_samples, per_det[rows, :, best]


@dataclass(frozen=True)
class Score:
    """Result for one sample: ``stat`` (network SNR^2), ``template`` (bank index) and its masses ``m1``, ``m2``
    (M_sun) and spins ``spin1z``, ``spin2z``, ``tc`` the reference detector's coalescence time (s from the
    segment start), ``detector_snr`` (n_det,) the per-detector SNRs entering the maximum."""

    stat: float
    template: int
    m1: float
    m2: float
    spin1z: float
    spin2z: float
    tc: float
    detector_snr: tuple[float, ...]

    @property
    def snr(self) -> float:
        """Network SNR ``sqrt(stat)``."""
        return math.sqrt(self.stat)


class MatchedFilter:
    """A configured search: the PSD of the data and a template bank, with the filters precomputed.

    Args:
      bank: templates (``make_bank`` / ``bank_from_params``).
      psd: (n_det, n_freq) one-sided PSD, 1/Hz (``design_psds`` or ``estimate_psd``), finite and > 0 in band.
      cfg: search settings.

    ``score(strain)`` takes raw strain (n_det, n_samples) float64 and returns a ``Score``.
    """

    def __init__(self, bank: TemplateBank, psd: np.ndarray, cfg: MatchedFilterConfig = MatchedFilterConfig()):
        psd = np.asarray(psd, dtype=np.float64)
        if psd.shape != (len(cfg.detectors), cfg.freqs.size):
            raise ValueError(f"psd shape {psd.shape} != ({len(cfg.detectors)}, {cfg.freqs.size})")
        self.bank = bank
        self.psd = psd
        self.cfg = cfg
        self._filters = snr_filters(bank.spectra, psd, cfg)

    def score(self, strain: np.ndarray, chunk: int = 32) -> Score:
        """Network statistic of one sample, maximized over templates (``chunk`` at a time) and lags.

        Raises ValueError on a strain that is not (n_det, n_samples) or not finite.
        """
        strain = np.asarray(strain, dtype=np.float64)
        expected = (len(self.cfg.detectors), self.cfg.n_samples)
        if strain.shape != expected:
            raise ValueError(f"expected strain of shape {expected}, got {strain.shape}")
        if not np.all(np.isfinite(strain)):
            raise ValueError("strain contains NaN or inf")
        data = np.fft.rfft(condition(strain, self.cfg), axis=-1) / self.cfg.fs
        best = (-np.inf, -1, 0, np.zeros(0))
        for start in range(0, len(self.bank), chunk):
            z = apply_filters(data, self._filters[start : start + chunk], self.cfg)
            stat, lag, peaks = network_statistic(z.real**2 + z.imag**2, self.cfg)
            j = int(np.argmax(stat))
            if stat[j] > best[0]:
                best = (float(stat[j]), start + j, int(lag[j]), peaks[j])
        stat, j, lag, peaks = best
        m1, m2, s1z, s2z = (float(v) for v in self.bank.params[j])
        tc = (self.cfg.tc_ref + lag / self.cfg.fs) % (self.cfg.n_samples / self.cfg.fs)
        return Score(stat, j, m1, m2, s1z, s2z, float(tc), tuple(float(math.sqrt(p)) for p in peaks))
