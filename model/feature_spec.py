"""The dataset's transformed feature spec (tf.Transform's ``DATA/stats/transformed_metadata``) and the check of
the configured model inputs, label and uid against it (:func:`resolve_input_spec`)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from model.architectures import get_architecture
from model.augment import check_augment_input
from model.config import TrainerConfig
from model.errors import DatasetError, FeatureSpecError
from transforms.contract import STATS_DIR

METADATA_DIR = "transformed_metadata"  # tf.Transform's name for the schema folder under DATA/stats
_FLOAT_INPUT_DTYPES = (tf.float32, tf.float64, tf.int64)


def read_feature_spec(data_dir: str, stats_subdir: str = STATS_DIR) -> dict[str, Any]:
    """The transformed feature spec written by tf.Transform under ``DATA/{stats_subdir}/transformed_metadata``."""
    stats = posixpath.join(data_dir, stats_subdir)
    metadata = posixpath.join(stats, METADATA_DIR)
    if not tf.io.gfile.isdir(metadata):
        raise DatasetError(
            f"tf.Transform metadata {metadata} is missing: run the analyze/normalize stages on {data_dir} first"
        )
    import tensorflow_transform as tft

    try:
        return dict(tft.TFTransformOutput(stats).transformed_feature_spec())
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise DatasetError(f"cannot read the transformed feature spec from {metadata}: {error}") from None


def _describe(spec: Any) -> str:
    if isinstance(spec, tf.io.FixedLenFeature):
        return f"FixedLenFeature({list(spec.shape)}, {spec.dtype.name})"
    return type(spec).__name__


def resolve_input_spec(
    feature_spec: Mapping[str, Any],
    config: TrainerConfig,
    source: str = "the transformed feature spec",
    check_inputs: bool = True,
) -> dict[str, tuple[int, ...]]:
    """Checks the model inputs, label and uid against the feature spec; returns input name -> example shape.

    With ``check_inputs=False`` only the label and uid are checked (and ``{}`` is returned).
    Raises FeatureSpecError naming the missing or mismatched feature and what the spec offers instead.
    """
    available = ", ".join(f"{k}: {_describe(v)}" for k, v in sorted(feature_spec.items()))

    def fixed(name: str, role: str) -> tf.io.FixedLenFeature:
        if name not in feature_spec:
            raise FeatureSpecError(f"feature '{name}' ({role}) is not in {source}; available features: {available}")
        spec = feature_spec[name]
        if not isinstance(spec, tf.io.FixedLenFeature):
            raise FeatureSpecError(
                f"feature '{name}' ({role}) must be a FixedLenFeature in {source}, got {_describe(spec)}"
            )
        return spec

    label = fixed(config.data.label_feature, "data.label_feature")
    if label.dtype != tf.int64 or list(label.shape) not in ([], [1]):
        raise FeatureSpecError(
            f"label feature '{config.data.label_feature}' must be a scalar int64, got {_describe(label)} in {source}"
        )
    uid = fixed(config.data.uid_feature, "data.uid_feature")
    if uid.dtype != tf.string or list(uid.shape) not in ([], [1]):
        raise FeatureSpecError(
            f"uid feature '{config.data.uid_feature}' must be a scalar string, got {_describe(uid)} in {source}"
        )
    result: dict[str, tuple[int, ...]] = {}
    if not check_inputs:
        return result
    for name in config.model.input_features:
        spec = fixed(name, "model input")
        if spec.dtype not in _FLOAT_INPUT_DTYPES:
            raise FeatureSpecError(f"model input '{name}' must be numeric, got {_describe(spec)} in {source}")
        result[name] = tuple(int(d) for d in spec.shape)
    get_architecture(config.model.architecture).check_inputs(result, config.model, source)
    check_augment_input(result, config.data.augment, source)
    return result
