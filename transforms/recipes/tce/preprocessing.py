"""tf.Transform preprocessing for light curves (recipe ``tce``): z-score each view with its train statistics.

``tce_preprocessing_fn`` is a plain dict -> dict function; ``tce_normalize_reference`` is its numpy reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from transforms.contract import LABEL, TARGET_ID, UID

TCE_UID = "tce_uid"
TCE_STATS_EXAMPLES = "stats_examples"


@dataclass(frozen=True)
class TceParams:
    """The float features of a TCE dataset and their lengths, e.g. ``(("flux_window", 100),)``."""

    views: tuple[tuple[str, int], ...]

    @property
    def stat_names(self) -> tuple[str, ...]:
        """Analyzer results read back into train_stats.npz: per view its mean and std, and the example count."""
        return tuple(f"{name}_{stat}" for name, _ in self.views for stat in ("mean", "std")) + (TCE_STATS_EXAMPLES,)


def tce_raw_feature_spec(params: TceParams) -> dict[str, tf.io.FixedLenFeature]:
    """Raw/split shards of light curves: the contract keys, ``tce_uid``, and each view as float32 bytes."""
    spec = {
        UID: tf.io.FixedLenFeature([], tf.string),
        TARGET_ID: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        TCE_UID: tf.io.FixedLenFeature([], tf.string),
    }
    spec.update({name: tf.io.FixedLenFeature([], tf.string) for name, _ in params.views})
    return spec


def decode_view(serialized: tf.Tensor, length: int) -> tf.Tensor:
    """float32 little-endian bytes ``[batch]`` -> ``[batch, length]`` float64 (relative flux minus one)."""
    flat = tf.io.decode_raw(serialized, tf.float32, little_endian=True)
    return tf.cast(tf.reshape(flat, [-1, length]), tf.float64)


def tce_preprocessing_fn(inputs: dict[str, tf.Tensor], params: TceParams) -> dict[str, tf.Tensor]:
    """tf.Transform preprocessing_fn for light curves: z-score each view with its train mean and std.

    Each view ``[batch, length]`` is standardized by one mean and one standard deviation over all its train
    values (so the shape of a transit is kept), computed in float64 and cast to float32 at the end; a view
    whose train std is 0 is only centred. ``uid``, ``target_id``, ``label`` and ``tce_uid`` pass through.
    """
    outputs = {}
    for name, length in params.views:
        x = decode_view(inputs[name], length)
        mean = tft.mean(x)
        std = tf.sqrt(tft.var(x))
        tf.identity(mean, name=f"{name}_mean")
        tf.identity(std, name=f"{name}_std")
        safe_std = tf.where(std > 0, std, tf.ones_like(std))
        outputs[name] = tf.cast((x - mean) / safe_std, tf.float32)
    tf.identity(tft.sum(tf.ones_like(inputs[LABEL], dtype=tf.float64)), name=TCE_STATS_EXAMPLES)
    for key in (UID, TARGET_ID, LABEL, TCE_UID):
        outputs[key] = tf.identity(inputs[key])
    return outputs


def make_tce_preprocessing_fn(params: TceParams):
    """``tce_preprocessing_fn`` bound to ``params`` (a picklable partial of a top-level function)."""
    return functools.partial(tce_preprocessing_fn, params=params)


def tce_normalize_reference(views: dict[str, np.ndarray], stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Numpy reference of the transform: ``(view - mean) / std`` per view with the analyzed statistics."""
    result = {}
    for name, value in views.items():
        std = float(stats[f"{name}_std"])
        result[name] = (np.asarray(value, np.float64) - float(stats[f"{name}_mean"])) / (std if std > 0 else 1.0)
    return result
