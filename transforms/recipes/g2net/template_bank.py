"""The matched filter's template bank: aligned-spin templates as spectra (``template_spectrum``), placed over
(m1, m2, spin1z, spin2z) by farthest-point placement in the match metric (``make_bank``); see ``matched_filter.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft

from transforms.recipes.g2net.matched_filter_config import MatchedFilterConfig
from transforms.recipes.g2net.waveform import SourceParams, place, polarizations

logger = logging.getLogger(__name__)


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
