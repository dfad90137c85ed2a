"""The matched filter's settings (``MatchedFilterConfig``), the conditioning of the strain (a Tukey window) and
its PSDs (``pycbc.psd``'s design curves, or estimated from noise-only samples); see ``matched_filter.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from transforms.recipes.g2net import signal as sig
from transforms.recipes.g2net.detectors import NETWORK
from transforms.recipes.g2net.priors import SampleSpec
from transforms.recipes.g2net.psd_models import network_psd
from transforms.recipes.g2net.waveform import FS_HZ, N_SAMPLES


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
