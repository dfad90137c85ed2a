"""Settings and source priors of the G2Net sample generator (``SampleSpec``), shared with the matched filter.

Topic: what the generator draws and at which data format. Units: ``fs`` in Hz, ``n_samples`` samples per
detector (strain ``(3, n_samples)``), ``f_low`` in Hz, ``snr_range`` network optimal SNR (dimensionless),
``mass_range`` component masses in solar masses (detector frame), ``tc_range`` geocentric coalescence time in
seconds from the window start; each range is ``(min, max)``, drawn uniformly. The generator
(``transforms.recipes.g2net.sample``) draws its sources from these priors; the matched filter
(``transforms.recipes.g2net.matched_filter``) takes its default search ranges from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.recipes.g2net.waveform import F_LOW_HZ, FS_HZ, N_SAMPLES, isco_frequency


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
