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

The settings, conditioning and PSDs live in ``matched_filter_config.py``, the template bank in
``template_bank.py``; this module names them all (``__all__``).

Known losses: the bank's discreteness (``minimal_match``); precession and higher modes when the data carry
them (the bank is aligned-spin, dominant mode); templates are cut at the segment start like the injected
signals, so a template shifted by ``k`` lags misses (or wraps round to the segment end) ``|k| / fs`` seconds of
its lowest-frequency part, ``|k| <= 0.32 s`` for the default ``tc_range``; lags are whole samples (0.49 ms at
2048 Hz); only geocentric ``tc`` in ``tc_range`` is searched.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from transforms.recipes.g2net.detectors import EARTH_LIGHT_TIME_S, light_travel_time
from transforms.recipes.g2net.matched_filter_config import MatchedFilterConfig, condition, design_psds, estimate_psd
from transforms.recipes.g2net.template_bank import TemplateBank, bank_from_params, make_bank, template_spectrum

__all__ = [  # the search's public names, wherever they are defined
    "MatchedFilter",
    "MatchedFilterConfig",
    "Score",
    "TemplateBank",
    "apply_filters",
    "bank_from_params",
    "coincidence_half_widths",
    "complex_snr",
    "condition",
    "design_psds",
    "estimate_psd",
    "make_bank",
    "network_statistic",
    "searched_lags",
    "snr_filters",
    "template_spectrum",
]

logger = logging.getLogger(__name__)


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
