"""Strain augmentations of the train split: applied per example on the parsed batch, stateless in a seed.

``data.augment`` (``AugmentConfig``) names the feature, channels-first ``(channels, samples)`` with channel 0 = H1
and channel 1 = L1; :func:`check_augment_input` refuses other shapes before training.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from model.config import AugmentConfig
from model.errors import FeatureSpecError


def check_augment_input(shapes: Mapping[str, tuple[int, ...]], augment: AugmentConfig, source: str) -> None:
    """Raises FeatureSpecError when augmentations are on and their feature is not ``(channels >= 2, samples)``."""
    if not augment.enabled:
        return
    shape = shapes[augment.feature]
    if len(shape) != 2 or shape[0] < 2:
        raise FeatureSpecError(
            f"augmentations need a (channels >= 2, samples) feature; '{augment.feature}' has "
            f"shape {list(shape)} in {source}"
        )


def augment_strain(strain: tf.Tensor, seed: tf.Tensor, augment: AugmentConfig) -> tf.Tensor:
    """Random per-example augmentations of a strain batch ``(batch, channels, samples)``, stateless in ``seed``.

    * time shift: circular roll by an integer in [-time_shift_max, time_shift_max] samples, all channels alike
      (``out[..., t] = in[..., t - shift]``, as ``np.roll``);
    * sign flip: the whole example times -1 with probability ``sign_flip_prob``;
    * detector swap: channels 0 and 1 (H1, L1) exchanged with probability ``detector_swap_prob``.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    batch = tf.shape(strain)[0]
    if augment.time_shift_max > 0:
        n = tf.shape(strain)[2]
        shift = tf.random.stateless_uniform(
            [batch], seeds[0], minval=-augment.time_shift_max, maxval=augment.time_shift_max + 1, dtype=tf.int32
        )
        index = tf.math.floormod(tf.range(n)[None, :] - shift[:, None], n)
        strain = tf.gather(strain, index, axis=2, batch_dims=1)
    if augment.sign_flip_prob > 0:
        flip = tf.random.stateless_uniform([batch], seeds[1]) < augment.sign_flip_prob
        strain = strain * tf.where(flip, -1.0, 1.0)[:, None, None]
    if augment.detector_swap_prob > 0:
        swap = tf.random.stateless_uniform([batch], seeds[2]) < augment.detector_swap_prob
        swapped = tf.concat([strain[:, 1:2], strain[:, 0:1], strain[:, 2:]], axis=1)
        strain = tf.where(swap[:, None, None], swapped, strain)
    return strain


def augment_batches(ds: tf.data.Dataset, augment: AugmentConfig, seed: int) -> tf.data.Dataset:
    """``ds`` of ``(features, *rest)`` batches with ``features[augment.feature]`` augmented, one fresh seed pair
    per batch (drawn from ``seed``, different each epoch)."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def apply(element, batch_seed):
        features, *rest = element
        features = dict(features)
        features[augment.feature] = augment_strain(features[augment.feature], batch_seed, augment)
        return (features, *rest)

    return tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
