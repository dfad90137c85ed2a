"""Train-time glitch augmentation (``data.glitch_augment``): single-detector glitches added to G2Net train batches.

Like train-time injection (``model/injection.py``) it relies on the dataset's normalization being affine with fixed
train statistics, so ``normalize(n + g) = normalize(n) + L(g)``: :func:`load_glitch_bank` builds, at the start of
training, a bank of ``L(g_unit)`` per detector (``transforms.recipes.g2net.injection.glitch_bank``: sine-Gaussians
and blips at unit single-detector optimal SNR), and :func:`add_glitch_batches` adds ``snr * bank[c, i]`` to channel
``c`` of an example with probability ``probability``, independently per detector and example, labels unchanged.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from model.config import GlitchAugmentConfig
from model.errors import DatasetError

logger = logging.getLogger(__name__)


def load_glitch_bank(data_dir: str, cfg: GlitchAugmentConfig) -> np.ndarray:
    """The glitch bank of ``data_dir``: ``(channels, bank_size, samples)`` float32."""
    from model.injection import read_linear_path
    from transforms.recipes.g2net.glitches import GlitchSpec
    from transforms.recipes.g2net.injection import glitch_bank

    path = read_linear_path(data_dir)
    try:
        spec = GlitchSpec(rate=1.0, kinds=tuple(cfg.kinds))
        bank = glitch_bank(cfg.bank_size, cfg.bank_seed, path, spec, cfg.psd_model)
    except ValueError as error:
        raise DatasetError(f"data.glitch_augment: {error}") from None
    logger.info(
        "train-time glitches: bank of %d %s per detector, probability %.3g per detector, SNR U%s",
        cfg.bank_size,
        "/".join(cfg.kinds),
        cfg.probability,
        tuple(cfg.snr_range),
    )
    return bank


def add_glitches(strain: tf.Tensor, bank: tf.Tensor, seed: tf.Tensor, cfg: GlitchAugmentConfig) -> tf.Tensor:
    """``strain`` ``(batch, channels, samples)`` plus, per (example, channel) with probability ``cfg.probability``,
    ``snr * bank[channel, i]`` (``i`` uniform, ``snr`` uniform in ``cfg.snr_range``); stateless in ``seed`` [2]."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    shape = tf.shape(strain)[:2]  # (batch, channels)
    hit = tf.random.stateless_uniform(shape, seeds[0]) < cfg.probability
    index = tf.random.stateless_uniform(shape, seeds[1], minval=0, maxval=tf.shape(bank)[1], dtype=tf.int32)
    low, high = cfg.snr_range
    snr = tf.random.stateless_uniform(shape, seeds[2], minval=low, maxval=high)
    # bank[c, index[b, c]] for every (b, c): gather along the bank axis with the channel as batch dimension.
    per_channel = tf.gather(bank, tf.transpose(index), axis=1, batch_dims=1)  # (channels, batch, samples)
    glitches = tf.transpose(per_channel, [1, 0, 2])
    scale = tf.where(hit, snr, tf.zeros_like(snr))
    return strain + scale[:, :, None] * glitches


def add_glitch_batches(ds: tf.data.Dataset, bank: np.ndarray, cfg: GlitchAugmentConfig, seed: int) -> tf.data.Dataset:
    """``ds`` of ``(features, label)`` batches with glitches added to ``features[cfg.feature]``, one fresh seed
    pair per batch (from ``seed``, different each epoch)."""
    bank_tensor = tf.constant(bank, tf.float32)
    seeds = tf.data.Dataset.random(seed=seed + 2, rerandomize_each_iteration=True).batch(2)

    def apply(element, batch_seed):
        features, *rest = element
        features = dict(features)
        features[cfg.feature] = add_glitches(features[cfg.feature], bank_tensor, batch_seed, cfg)
        return (features, *rest)

    ds = tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
