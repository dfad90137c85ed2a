"""BatchNorm recalibration (``train.bn_recalibration_batches``): before every validation, recompute the BN moving
statistics with the current weights.

Why: a BatchNormalization layer normalizes with the batch's statistics in training and with its moving averages
(an EMA over past train batches, ``momentum``) at inference. The EMA mixes batches computed with older weights; when
the weights move fast (AdamW at 1e-3, no warmup, a few dozen steps an epoch) the averages no longer describe what
the current weights produce, the mismatch compounds through the conv blocks and GeM pooling, and the sigmoid
saturates: every val example scores 1.0 (val ROC-AUC 0.5, val loss ~9) while the same weights with batch
statistics separate the classes (docs/gravitational-waves.md, "A trainer that does not collapse"). Recomputing the
statistics from ``n`` fresh train batches with the weights frozen ("precise BN") removes the lag: the inference
network is then the trained one.

The recalibration averages the per-batch means and variances of each BN input over ``n`` batches of the train
stream (with its injections and augmentations) in training mode; weights are untouched (dropout and the like only
perturb layers after the last BN of ``g2net_cnn``). A network without BatchNormalization is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of ``model``, nested models included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model: keras.Model, batches: Iterator, n_batches: int) -> int:
    """Sets each BN layer's moving mean and variance to the average over ``n_batches`` of ``batches`` (``(inputs,
    ...)`` tuples) of its batch statistics under the current weights. Returns the number of batches used."""
    layers = batch_norm_layers(model)
    if not layers or n_batches < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for used, element in enumerate(batches, start=1):
            inputs = element[0] if isinstance(element, tuple) else element
            for layer in layers:
                # moving = m * moving + (1 - m) * batch with m = 1 - 1/i: the running mean over batches 1..i.
                layer.momentum = 1.0 - 1.0 / used
            model(inputs, training=True)
            if used >= n_batches:
                break
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return used


class BatchNormRecalibration(keras.callbacks.Callback):
    """Recalibrates the model's BN statistics (:func:`recalibrate_batch_norm`) at the start of every evaluation
    during ``fit``, i.e. before each epoch's validation, so val metrics, early stopping's best weights and the saved
    model all use statistics of their own weights.

    ``make_batches``: returns a fresh iterator of train batches (called again when one runs out).
    """

    def __init__(self, make_batches: Callable[[], Iterator], n_batches: int):
        super().__init__()
        self._make_batches = make_batches
        self._iterator: Iterator | None = None
        self.n_batches = n_batches

    def _batches(self) -> Iterator:
        while True:
            if self._iterator is None:
                self._iterator = iter(self._make_batches())
            try:
                yield next(self._iterator)
            except StopIteration:
                self._iterator = None

    def on_test_begin(self, logs=None):
        used = recalibrate_batch_norm(self.model, self._batches(), self.n_batches)
        if used:
            logger.debug("recomputed BatchNorm statistics from %d train batches", used)


def recalibration_stream(info, config, bank=None, glitch_bank=None, seed_offset: int = 1) -> tf.data.Dataset:
    """A second train stream for recalibration, drawn like the training one (injections from ``bank`` when
    given, the train augmentations, glitches from ``glitch_bank`` when given) under another seed."""
    from model.data import make_dataset
    from model.glitch_augment import add_glitch_batches
    from model.injection import make_injection_dataset

    seed = config.seed + seed_offset
    if bank is not None:
        ds = make_injection_dataset(info, config, bank, seed=seed)
    else:
        ds = make_dataset(info, "train", config, training=True, seed=seed)
    if glitch_bank is not None:
        ds = add_glitch_batches(ds, glitch_bank, config.data.glitch_augment, seed)
    return ds


def recalibration_callback(
    model: keras.Model, make_batches: Callable[[], tf.data.Dataset], n_batches: int
) -> BatchNormRecalibration | None:
    """The callback, or None when ``n_batches`` is 0 or ``model`` has no BatchNormalization layer."""
    if n_batches < 1 or not batch_norm_layers(model):
        return None
    return BatchNormRecalibration(make_batches, n_batches)
