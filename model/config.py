"""Trainer config schema (pydantic v2, ``extra="forbid"``, frozen), loaded from YAML with ``--set`` overrides.

One file (``run_configs/train_*.yaml``) holds everything a run needs besides the data path: the network
(``model``, selected by ``model.architecture``), the input pipeline (``data``), the optimisation (``train``)
and how the decision threshold and the reported metrics are computed (``evaluation``). Unknown keys are refused
with a message naming the dotted key (shared loader in ``transforms/config.py``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from model.config_injection import GlitchAugmentConfig, InjectionConfig  # noqa: F401  (re-exported)
from transforms.config import (
    MAX_CONFIG_BYTES,
    ConfigError,
    _Strict,
    apply_overrides,
    check_looks_like_config,
    load_config,
    top_level_keys,
    validate,
    yaml_mapping,
)
from transforms.contract import NORM_DIR, STATS_DIR

Activation = Literal["silu", "gelu", "relu"]
Monitor = Literal["val_auc", "val_pr_auc", "val_loss", "val_accuracy"]


class G2NetCNNConfig(_Strict):
    """The seed's 1D CNN: conv blocks (Conv1D+BN+act+MaxPool) -> GeM pooling -> dense head -> sigmoid.

    The input feature is stored channels-first, ``(channels, samples)`` = ``(3, 4096)`` for G2Net strain
    (H1, L1, V1 at 2048 Hz); the model transposes it to ``(samples, channels)`` itself.
    """

    architecture: Literal["g2net_cnn"] = "g2net_cnn"
    input_feature: str = "strain"
    # Expected per-example shape (channels, samples); checked against the feature spec. null = take the spec's.
    input_shape: list[int] | None = [3, 4096]
    # One entry per conv block: filters, kernel size (samples) and max-pool size.
    filters: list[int] = [32, 64, 128, 256]
    kernel_sizes: list[int] = [64, 32, 16, 16]
    pool_sizes: list[int] = [4, 4, 4, 2]
    activation: Activation = "silu"
    # Momentum of the BatchNormalization moving mean/variance used at inference (Keras default 0.99). With ~50
    # steps an epoch, 0.99 averages over statistics of weights two epochs old, and val scores swing from epoch
    # to epoch; 0.9 follows the current weights.
    bn_momentum: float = Field(0.99, gt=0.0, lt=1.0)
    # Generalized-mean pooling over time: initial exponent p, clamp eps, whether p is learned.
    gem_p: float = Field(3.0, ge=1.0)
    gem_eps: float = Field(1e-6, gt=0)
    gem_trainable: bool = True
    # Hidden dense layers of the head; the output Dense(1, sigmoid) is added after them.
    dense_units: list[int] = [256, 64]
    dropout: float = Field(0.25, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _blocks(self) -> G2NetCNNConfig:
        n = len(self.filters)
        if n == 0:
            raise ValueError("filters must name at least one conv block")
        if len(self.kernel_sizes) != n or len(self.pool_sizes) != n:
            raise ValueError(
                f"filters, kernel_sizes and pool_sizes need one entry per conv block, got lengths "
                f"{n}, {len(self.kernel_sizes)}, {len(self.pool_sizes)}"
            )
        if any(v < 1 for v in [*self.filters, *self.kernel_sizes, *self.pool_sizes, *self.dense_units]):
            raise ValueError("filters, kernel_sizes, pool_sizes and dense_units must be positive")
        if self.input_shape is not None and (len(self.input_shape) != 2 or min(self.input_shape) < 1):
            raise ValueError(f"input_shape must be [channels, samples], got {self.input_shape}")
        return self

    @property
    def input_features(self) -> list[str]:
        return [self.input_feature]


class ViewBranchConfig(_Strict):
    """One Conv1D branch over a binned view (e.g. ``global_view`` [301], ``local_view`` [31])."""

    feature: str
    # Expected length of the view (bins); checked against the feature spec. null = take the spec's.
    length: int | None = Field(None, ge=1)
    filters: list[int] = [16, 32]
    kernel_size: int = Field(5, ge=1)
    convs_per_block: int = Field(2, ge=1)
    pool_size: int = Field(3, ge=1)
    pool_strides: int = Field(2, ge=1)
    pooling: Literal["flatten", "gem", "avg"] = "flatten"


class MultiBranchCNNConfig(_Strict):
    """Astronet/ExoMiner-style network: a Conv1D branch per view, a dense branch for scalars, dense head."""

    architecture: Literal["multibranch_cnn"] = "multibranch_cnn"
    views: list[ViewBranchConfig] = Field(min_length=1)
    scalar_features: list[str] = []
    scalar_units: list[int] = [32]
    head_units: list[int] = [256, 128]
    activation: Activation = "relu"
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    gem_p: float = Field(3.0, ge=1.0)
    gem_eps: float = Field(1e-6, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> MultiBranchCNNConfig:
        names = self.input_features
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features named more than once in views/scalar_features: {duplicates}")
        return self

    @property
    def input_features(self) -> list[str]:
        return [v.feature for v in self.views] + list(self.scalar_features)


ModelConfig = Annotated[G2NetCNNConfig | MultiBranchCNNConfig, Field(discriminator="architecture")]


class AugmentConfig(_Strict):
    """Strain augmentations, train split only, applied per example on the parsed batch (all off by default).

    The feature must be channels-first ``(3, samples)`` with channel 0 = H1 and channel 1 = L1.
    """

    feature: str = "strain"
    # Random circular time shift of up to +-time_shift_max samples (the same shift for all detectors).
    time_shift_max: int = Field(0, ge=0)
    # Probability of multiplying the whole example by -1.
    sign_flip_prob: float = Field(0.0, ge=0.0, le=1.0)
    # Probability of swapping the H1 and L1 channels (0 and 1).
    detector_swap_prob: float = Field(0.0, ge=0.0, le=1.0)

    @property
    def enabled(self) -> bool:
        return self.time_shift_max > 0 or self.sign_flip_prob > 0 or self.detector_swap_prob > 0


class DataConfig(_Strict):
    """tf.data input over ``DATA/{subdir}/{split}/*.tfrecord``, with the statistics of ``DATA/{stats_subdir}``."""

    subdir: str = NORM_DIR
    # Folder (under DATA) of the tf.Transform output the shards were normalized with: transformed_metadata/ (the
    # feature spec), transform_fn/ (predict) and the recipe's statistics (injection). A cross-validation
    # iteration reads norm/cv_XX with stats/cv_XX (`train --cv` and `--iteration N` set both).
    stats_subdir: str = STATS_DIR
    label_feature: str = "label"
    uid_feature: str = "uid"
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    shuffle_buffer: int = Field(4096, ge=1)
    interleave_cycle: int = Field(4, ge=1)
    # Cache serialized train/val records in memory: true, false, or "auto" (when shards total <= cache_max_mb).
    cache: bool | Literal["auto"] = "auto"
    cache_max_mb: float = Field(2048.0, ge=0)
    # Shard check before training: "full" reads every record once (and counts examples and labels),
    # "head" reads the first record of each shard, "off" skips it.
    verify_shards: Literal["full", "head", "off"] = "full"
    augment: AugmentConfig = AugmentConfig()
    injection: InjectionConfig = InjectionConfig()
    glitch_augment: GlitchAugmentConfig = GlitchAugmentConfig()

    @property
    def eval_batch(self) -> int:
        return self.eval_batch_size or self.batch_size


class PlateauConfig(_Strict):
    monitor: Monitor = "val_loss"
    factor: float = Field(0.5, gt=0.0, lt=1.0)
    patience: int = Field(2, ge=0)
    min_lr: float = Field(1e-6, ge=0)


class CosineConfig(_Strict):
    """Linear warmup from 0 to learning_rate, then cosine decay to final_lr_fraction * learning_rate."""

    warmup_epochs: float = Field(1.0, ge=0)
    final_lr_fraction: float = Field(0.01, ge=0.0, le=1.0)


class EarlyStoppingConfig(_Strict):
    monitor: Monitor = "val_auc"
    patience: int = Field(5, ge=0)
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(_Strict):
    epochs: int = Field(30, ge=1)
    optimizer: Literal["adam", "adamw"] = "adamw"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    clipnorm: float | None = Field(None, gt=0)
    lr_schedule: Literal["constant", "plateau", "cosine"] = "plateau"
    plateau: PlateauConfig = PlateauConfig()
    cosine: CosineConfig = CosineConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    # "none", "balanced" (n / (2 n_class) from the train label counts) or an explicit {0: w0, 1: w1}.
    class_weight: Literal["none", "balanced"] | dict[int, float] = "none"
    # Cap on batches per epoch (null = the whole train split).
    steps_per_epoch: int | None = Field(None, ge=1)
    verbose: Literal[0, 1, 2] = 2
    # tf.config.experimental.enable_op_determinism(): bitwise reproducible, slower.
    deterministic_ops: bool = False
    # Before every validation, recompute the BatchNorm moving statistics from this many fresh train batches with
    # the current weights (model/bn_recalibration.py); 0 = keep Keras' moving averages. No-op without BatchNorm.
    bn_recalibration_batches: int = Field(8, ge=0)

    @field_validator("class_weight")
    @classmethod
    def _weights(cls, value: object) -> object:
        if isinstance(value, dict):
            if set(value) != {0, 1} or any(w <= 0 for w in value.values()):
                raise ValueError(f"class_weight must give positive weights for labels 0 and 1, got {value}")
        return value


class EvaluationConfig(_Strict):
    """Decision threshold (chosen on val, applied to val and test) and the SNR breakdown."""

    threshold: Literal["max_f1", "youden", "fixed"] = "max_f1"
    fixed_threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Data-table column with the injected SNR (0 or empty for noise); skipped when the tables lack it.
    snr_column: str = "snr"
    # Number of equal-count bins over the positives' SNR, or explicit increasing bin edges.
    snr_bins: int | list[float] = 6
    # Search evaluation (python -m model.evaluate --background): false-alarm probabilities measured against the
    # noise background, the fewest noise examples above a threshold for a FAP to count as resolved, the binomial
    # interval, and the SNR range the injections were drawn uniformly from (sensitive-volume weights; null = drawn
    # uniform in volume). Schema: transforms/evaluation/fap.py.
    search_faps: list[float] = [1e-2, 1e-3, 1e-4]
    min_false_alarms: int = Field(10, ge=1)
    interval: Literal["clopper_pearson", "wilson"] = "clopper_pearson"
    injection_snr_range: tuple[float, float] | None = (4.0, 20.0)

    @field_validator("search_faps")
    @classmethod
    def _faps(cls, value: list[float]) -> list[float]:
        if not value or any(not 0.0 < f < 1.0 for f in value):
            raise ValueError(f"search_faps must be probabilities in (0, 1), got {value}")
        return value

    @field_validator("snr_bins")
    @classmethod
    def _bins(cls, value: int | list[float]) -> int | list[float]:
        if isinstance(value, int) and value < 1:
            raise ValueError("snr_bins must be at least 1")
        if isinstance(value, list) and len(value) < 2:
            raise ValueError("snr_bins edges need at least two values")
        if isinstance(value, list) and any(value[i] >= value[i + 1] for i in range(len(value) - 1)):
            raise ValueError(f"snr_bins edges must be strictly increasing, got {value}")
        return value


class TrainerConfig(_Strict):
    """Everything ``python -m model.train`` needs besides the data and output paths."""

    name: str = Field("g2net_cnn", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = 42
    model: ModelConfig = G2NetCNNConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _consistent(self) -> TrainerConfig:
        reserved = {self.data.label_feature, self.data.uid_feature}
        clash = sorted(reserved & set(self.model.input_features))
        if clash:
            raise ValueError(f"model inputs {clash} are the label/uid features")
        if self.data.augment.enabled and self.data.augment.feature not in self.model.input_features:
            raise ValueError(
                f"data.augment.feature '{self.data.augment.feature}' is not a model input {self.model.input_features}"
            )
        glitch = self.data.glitch_augment
        if glitch.enabled and self.model.input_features != [glitch.feature]:
            raise ValueError(
                f"data.glitch_augment needs the model's only input to be '{glitch.feature}', the model reads "
                f"{self.model.input_features}"
            )
        injection = self.data.injection
        if injection.enabled and self.model.input_features != [injection.feature]:
            raise ValueError(
                f"data.injection needs the model's only input to be '{injection.feature}', the model reads "
                f"{self.model.input_features}"
            )
        return self


_ARCHITECTURES = {"g2net_cnn": G2NetCNNConfig, "multibranch_cnn": MultiBranchCNNConfig}
_TAGGED_KEY = re.compile(r"config key 'model\.(g2net_cnn|multibranch_cnn)(?:\.([^']*))?': (.*)$")


def _untag(error: ConfigError) -> ConfigError:
    """Rewrites pydantic's ``model.<architecture>.key`` locations as the YAML key ``model.key``."""
    lines = []
    for line in str(error).splitlines():
        match = _TAGGED_KEY.search(line)
        if match:
            architecture, key, message = match.groups()
            if message == "unknown key" and key and "." not in key:
                close = difflib.get_close_matches(key, list(_ARCHITECTURES[architecture].model_fields), n=1)
                message += f" (did you mean '{close[0]}'?)" if close else ""
            dotted = f"model.{key}" if key else "model"
            line = f"{line[: match.start()]}config key '{dotted}': {message} (architecture {architecture})"
        lines.append(line)
    return ConfigError("\n".join(lines), code=error.code)


def load_trainer_config(path: str | None = None, overrides: Iterable[str] = ()) -> TrainerConfig:
    """Loads a trainer YAML (local, or ``gs://`` via tf.io.gfile), applies ``dotted.key=value`` overrides."""
    try:
        if path is None or "://" not in path:
            return load_config(TrainerConfig, path, overrides)
        import tensorflow as tf

        try:
            with tf.io.gfile.GFile(path, "rb") as handle:
                data = handle.read(MAX_CONFIG_BYTES + 1)
        except tf.errors.OpError as error:
            raise ConfigError(f"cannot read config {path}: {error.message}") from None
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config {path} is larger than {MAX_CONFIG_BYTES} bytes", code="config_too_large")
        raw = yaml_mapping(data.decode("utf-8", "replace"), path)
        check_looks_like_config(raw, path, top_level_keys(TrainerConfig) | {"extends"})
        if "extends" in raw:
            raise ConfigError(f"config {path}: 'extends' is only supported for local config files")
        return validate(TrainerConfig, apply_overrides(raw, overrides), path)
    except ConfigError as error:
        raise _untag(error) from None


def config_from_dict(raw: dict, source: str = "<dict>") -> TrainerConfig:
    """Validates a resolved config (e.g. the ``config`` entry of a run's config JSON)."""
    try:
        return validate(TrainerConfig, raw, source)
    except ConfigError as error:
        raise _untag(error) from None
