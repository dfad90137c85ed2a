"""Settings and source priors of the G2Net sample generator (``SampleSpec``), shared with the matched filter.

Topic: what the generator draws and at which data format. Units: ``fs`` in Hz, ``n_samples`` samples per
detector (strain ``(3, n_samples)``), ``f_low`` in Hz, masses in solar masses (detector frame), spins
dimensionless, distances in Mpc, ``tc_range`` geocentric merger time in seconds from the window start. Each range
is ``(min, max)``. Draws (``transforms.recipes.g2net.sample.draw_source``):

* masses uniform in ``mass_range`` (sorted so ``m1 >= m2``);
* spins: ``spin_mode: aligned`` draws ``spin1z``, ``spin2z`` uniform in ``[-spin_max, spin_max]``;
  ``precessing`` draws magnitudes uniform in ``[0, spin_max]`` with isotropic directions (use a precessing
  approximant such as ``IMRPhenomXPHM``);
* sky isotropic, ``cos(inclination)`` uniform, ``psi`` uniform in ``[0, pi)``, coalescence phase uniform,
  ``tc`` uniform in ``tc_range``, the window's GPS start uniform over one sidereal day from ``gps_epoch``;
* loudness: with ``snr_range`` set, the distance is solved for a network optimal SNR uniform in it; with
  ``snr_range = None``, the distance is drawn uniform in volume within ``distance_range``.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.recipes.g2net.psd_models import PSD_MODELS
from transforms.recipes.g2net.waveform import DEFAULT_APPROXIMANT, F_LOW_HZ, FS_HZ, N_SAMPLES

SPIN_MODES = ("aligned", "precessing")
GPS_EPOCH = 1238166018.0  # 2019-04-01 (start of O3)


@dataclass(frozen=True)
class SampleSpec:
    """Generator settings and priors (module doc)."""

    fs: float = FS_HZ
    n_samples: int = N_SAMPLES
    f_low: float = F_LOW_HZ
    approximant: str = DEFAULT_APPROXIMANT
    psd_model: str = "design"
    snr_range: tuple[float, float] | None = (4.0, 20.0)
    distance_range: tuple[float, float] = (100.0, 2000.0)
    mass_range: tuple[float, float] = (10.0, 50.0)
    spin_mode: str = "aligned"
    spin_max: float = 0.5
    tc_range: tuple[float, float] = (1.2, 1.8)
    gps_epoch: float = GPS_EPOCH

    def __post_init__(self) -> None:
        ranges = ("distance_range", "mass_range", "tc_range") + (("snr_range",) if self.snr_range else ())
        for name in ranges:
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < min <= max, got {(low, high)}")
        duration = self.n_samples / self.fs
        if self.tc_range[1] + 0.03 > duration:
            raise ValueError(f"tc_range {self.tc_range} leaves no room for light travel in {duration} s")
        if not (1.0 <= self.mass_range[0] and self.mass_range[1] <= 300.0):
            raise ValueError(f"mass_range {self.mass_range} must lie in [1, 300] M_sun")
        if self.spin_mode not in SPIN_MODES:
            raise ValueError(f"spin_mode must be one of {SPIN_MODES}, got {self.spin_mode!r}")
        if not 0.0 <= self.spin_max < 1.0:
            raise ValueError(f"spin_max must lie in [0, 1), got {self.spin_max}")
        if self.psd_model not in PSD_MODELS:
            raise ValueError(f"psd_model must be one of {sorted(PSD_MODELS)}, got {self.psd_model!r}")
