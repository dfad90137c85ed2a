"""The trainer config's train-time injection sections: fresh signals (``data.injection``) and single-detector
glitches (``data.glitch_augment``) added to train batches (``model/injection.py``, ``model/glitch_augment.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from transforms.config import _Strict


class InjectionConfig(_Strict):
    """Train-time injection (G2Net strain; ``model/injection.py``): fresh positives every epoch.

    The train stream is the train split's noise-only examples (label 0); each becomes a positive with probability
    ``positive_fraction`` by adding ``rho * bank[i]``: a random entry of a bank of ``bank_size`` normalized
    waveforms at unit network SNR (``transforms/recipes/g2net/injection.py``, built at the start of training from
    the dataset's train statistics) scaled to an SNR ``rho`` drawn uniformly from ``snr_range``. The train
    split's own positives are not used for training (val and test are unchanged).
    """

    enabled: bool = False
    feature: str = "strain"
    bank_size: int = Field(2000, ge=1)
    bank_seed: int = Field(12, ge=0)
    # Generator prior of the bank's sources: any SampleSpec field but fs/n_samples (as `make-sample --prior`).
    prior: dict[str, Any] = {}
    snr_range: tuple[float, float] = (4.0, 20.0)
    positive_fraction: float = Field(0.5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _snr(self) -> InjectionConfig:
        low, high = self.snr_range
        if not 0.0 < low <= high:
            raise ValueError(f"snr_range must satisfy 0 < low <= high, got {list(self.snr_range)}")
        return self


class GlitchAugmentConfig(_Strict):
    """Train-time glitch augmentation (G2Net strain; ``model/glitch_augment.py``): single-detector glitches added
    to train batches, noise and injected positives alike, labels unchanged, so the network learns that a burst in
    one detector is not a signal.

    Each detector of each train example independently gets ``snr * bank[detector, i]`` with probability
    ``probability``: ``i`` uniform over a bank of ``bank_size`` normalized unit-SNR glitches per detector
    (``transforms/recipes/g2net/injection.py: glitch_bank``, kinds ``kinds``, built at the start of training from
    the dataset's train statistics), ``snr`` uniform in ``snr_range`` (single-detector optimal SNR, the
    generator's). 0 = off.
    """

    probability: float = Field(0.0, ge=0.0, le=1.0)
    feature: str = "strain"
    snr_range: tuple[float, float] = (6.0, 30.0)
    kinds: list[Literal["sine_gaussian", "blip"]] = ["sine_gaussian", "blip"]
    bank_size: int = Field(200, ge=1)
    bank_seed: int = Field(13, ge=0)
    psd_model: Literal["design", "o3"] = "design"

    @model_validator(mode="after")
    def _snr(self) -> GlitchAugmentConfig:
        low, high = self.snr_range
        if not 0.0 < low <= high:
            raise ValueError(f"snr_range must satisfy 0 < low <= high, got {list(self.snr_range)}")
        if not self.kinds:
            raise ValueError("kinds must name at least one glitch kind")
        return self

    @property
    def enabled(self) -> bool:
        return self.probability > 0
