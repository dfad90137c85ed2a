"""Config section of the G2Net strain recipe (``g2net:``): ``.npy`` strain + labels CSV, bandpass, PSD labels."""

from __future__ import annotations

from pydantic import Field, model_validator

from transforms.config import _Strict


class BandpassConfig(_Strict):
    """Zero-phase Butterworth bandpass applied per example in the build stage."""

    low_hz: float = Field(20.0, gt=0)
    high_hz: float = Field(500.0, gt=0)
    order: int = Field(8, ge=1, le=16)

    @model_validator(mode="after")
    def _ordered(self) -> BandpassConfig:
        if self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz ({self.low_hz}) must be below high_hz ({self.high_hz})")
        return self


class G2NetConfig(_Strict):
    """G2Net-layout strain: where the inputs are, their shape, the build bandpass and the PSD's noise labels."""

    labels_csv: str = "training_labels.csv"
    npy_glob: str = "train/**/*.npy"
    id_column: str = "id"
    label_column: str = "target"
    group_column: str = "id"
    truth_csv: str | None = None
    sample_rate_hz: float = Field(2048.0, gt=0)
    n_channels: int = Field(3, ge=1)
    n_samples: int = Field(4096, ge=16)
    bandpass: BandpassConfig = BandpassConfig()
    # Analyze: the average PSD is taken over train examples with these labels (noise only); Tukey window alpha.
    psd_labels: list[int] = [0]
    tukey_alpha: float = Field(0.1, ge=0.0, le=1.0)
