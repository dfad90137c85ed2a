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
    # Validation (build): the declared label set, and the physical range of each channel's raw strain std.
    # Generated and real detector strain has a per-channel std of ~1e-22 to 1e-19 before the bandpass (~1e-22
    # after); the defaults leave two decades either side and refuse x1e30, all-zero and unit-scale (counts) data.
    labels: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    min_channel_std: float = Field(1e-24, gt=0, allow_inf_nan=False)
    max_channel_std: float = Field(1e-17, gt=0, allow_inf_nan=False)
    # A channel with fewer distinct values than this fraction of its samples is quantized (8-bit-like data).
    min_distinct_fraction: float = Field(0.25, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _cross_keys(self) -> G2NetConfig:
        nyquist = self.sample_rate_hz / 2
        if self.bandpass.high_hz >= nyquist:
            raise ValueError(
                f"config key 'g2net.bandpass.high_hz': {self.bandpass.high_hz} Hz is not below the Nyquist "
                f"frequency {nyquist} Hz of g2net.sample_rate_hz={self.sample_rate_hz}"
            )
        if self.min_channel_std >= self.max_channel_std:
            raise ValueError("config key 'g2net.min_channel_std' must be below g2net.max_channel_std")
        missing = sorted(set(self.psd_labels) - set(self.labels))
        if missing:
            raise ValueError(f"config key 'g2net.psd_labels': {missing} not in the declared g2net.labels {self.labels}")
        return self
