"""Train-time injection (``data.injection``): fresh G2Net positives every epoch from noise-only examples.

The dataset's normalization is affine with fixed train statistics, so ``normalize(n + h) = normalize(n) + L(h)``
(``transforms/recipes/g2net/injection.py``; docs/ARCHITECTURE.md section 9). At the start of training
:func:`load_bank` reads the dataset's resolved ``g2net`` config (``DATA/manifest.json``) and train statistics
(``DATA/stats/train_stats.npz``) and draws a bank of ``L(h_unit)``: sources from the configured generator prior,
projected onto H1/L1/V1, at network optimal SNR 1, passed through the same numerics as the normal path.
:func:`make_injection_dataset` then streams the train split's noise-only examples, and for each batch turns a
``positive_fraction`` of them into positives: ``x + rho * bank[i]`` with ``i`` uniform over the bank and ``rho``
uniform in ``snr_range``, labels set to match; the train augmentations follow (``model/augment.py``).

Imports ``transforms`` only (never ``beam_pipelines``); the waveforms come from PyCBC/LALSimulation through the
recipe's generator, imported when a bank is built.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import tensorflow as tf

from model.augment import augment_batches
from model.config import InjectionConfig, TrainerConfig
from model.data import DatasetInfo, interleave_records, join, read_manifest, should_cache
from model.errors import DatasetError, FeatureSpecError
from transforms.contract import STATS_DIR

logger = logging.getLogger(__name__)

TRAIN_STATS = "train_stats.npz"  # written by the G2Net recipe's analyze stage (recipe.stats_files)
_PARSE_BATCH = 256


def check_injection_input(info: DatasetInfo, config: TrainerConfig) -> None:
    """Raises FeatureSpecError unless the model's only input is the injection feature, ``(channels, samples)``."""
    injection = config.data.injection
    inputs = list(config.model.input_features)
    if inputs != [injection.feature]:
        raise FeatureSpecError(
            f"data.injection needs the model's only input to be '{injection.feature}', the model reads {inputs}"
        )
    shape = info.input_spec.get(injection.feature, ())
    if len(shape) != 2:
        raise FeatureSpecError(f"data.injection needs a (channels, samples) feature, '{injection.feature}' is {shape}")


def read_linear_path(data_dir: str, stats_subdir: str = STATS_DIR):
    """The dataset's ``LinearPath``: its manifest's ``g2net`` section and ``{stats_subdir}/train_stats.npz``."""
    from transforms.recipes.g2net.injection import LinearPath

    path, _, manifest = read_manifest(data_dir)
    section = (manifest.get("config") or {}).get("g2net")
    if not isinstance(section, dict):
        raise DatasetError(f"data.injection needs a G2Net dataset: {path} records no 'g2net' config section")
    stats_path = join(data_dir, stats_subdir, TRAIN_STATS)
    if not tf.io.gfile.exists(stats_path):
        raise DatasetError(f"data.injection needs the train statistics {stats_path} (run the analyze stage)")
    with tf.io.gfile.GFile(stats_path, "rb") as handle:
        stats = dict(np.load(io.BytesIO(handle.read())))
    missing = sorted({"avg_psd", "channel_std"} - set(stats))
    if missing:
        raise DatasetError(f"{stats_path} lacks {missing}")
    return LinearPath.from_dataset(section, stats)


def load_bank(data_dir: str, injection: InjectionConfig, stats_subdir: str = STATS_DIR) -> np.ndarray:
    """The bank of normalized unit-SNR waveforms for ``data_dir`` and the statistics in ``stats_subdir``:
    ``(bank_size, channels, samples)`` float32."""
    from transforms.recipes.g2net.injection import waveform_bank

    try:
        return waveform_bank(
            injection.bank_size, injection.bank_seed, read_linear_path(data_dir, stats_subdir), injection.prior
        )
    except ValueError as error:
        raise DatasetError(f"data.injection: {error}") from None


def inject(strain: tf.Tensor, bank: tf.Tensor, index: tf.Tensor, snr: tf.Tensor, is_signal: tf.Tensor) -> tf.Tensor:
    """``strain + snr * bank[index]`` where ``is_signal``, else ``strain``: ``(batch, channels, samples)`` float32.

    ``strain`` normalized noise, ``bank`` ``(n_bank, channels, samples)`` normalized unit-SNR waveforms,
    ``index`` int ``(batch,)``, ``snr`` float32 ``(batch,)`` network optimal SNRs, ``is_signal`` bool ``(batch,)``.
    """
    scale = tf.where(is_signal, snr, tf.zeros_like(snr))
    return strain + scale[:, None, None] * tf.gather(bank, index)


def inject_batch(strain: tf.Tensor, bank: tf.Tensor, seed: tf.Tensor, injection: InjectionConfig):
    """Random injections into a noise batch, stateless in ``seed`` (shape ``[2]``): ``(strain, label (batch, 1))``."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    batch = tf.shape(strain)[0]
    is_signal = tf.random.stateless_uniform([batch], seeds[0]) < injection.positive_fraction
    index = tf.random.stateless_uniform([batch], seeds[1], minval=0, maxval=tf.shape(bank)[0], dtype=tf.int32)
    low, high = injection.snr_range
    snr = tf.random.stateless_uniform([batch], seeds[2], minval=low, maxval=high)
    label = tf.reshape(tf.cast(is_signal, tf.float32), [-1, 1])
    return inject(strain, bank, index, snr, is_signal), label


def make_injection_dataset(
    info: DatasetInfo, config: TrainerConfig, bank: np.ndarray, seed: int | None = None
) -> tf.data.Dataset:
    """Endless batched ``({feature: strain}, label)`` for training: noise-only train examples with injections.

    Shuffled (seeded, reshuffled each pass), ``data.batch_size`` per batch, injections then augmentations drawn
    fresh for every batch. Size epochs with ``steps_per_epoch``.
    """
    data = config.data
    injection = data.injection
    seed = config.seed if seed is None else seed
    split = info.splits["train"]
    files = list(split.shards)
    parse_spec = {
        injection.feature: info.parse_spec[injection.feature],
        data.label_feature: info.parse_spec[data.label_feature],
    }

    records = interleave_records(files, data.interleave_cycle, seed, shuffle=True)

    def parse(serialized):
        example = tf.io.parse_example(serialized, parse_spec)
        return tf.cast(example[injection.feature], tf.float32), tf.reshape(example[data.label_feature], [-1])

    noise = (
        records.batch(_PARSE_BATCH)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .unbatch()
        .filter(lambda strain, label: tf.equal(label, 0))
        .map(lambda strain, label: strain)
    )
    if should_cache(split, data):
        noise = noise.cache()
    noise = noise.shuffle(data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    batches = noise.batch(data.batch_size, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
    bank_tensor = tf.constant(bank, tf.float32)

    def apply(strain, batch_seed):
        strain, label = inject_batch(strain, bank_tensor, batch_seed, injection)
        return {injection.feature: strain}, label

    ds = tf.data.Dataset.zip((batches, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if data.augment.enabled:
        ds = augment_batches(ds, data.augment, seed)
    logger.info(
        "train-time injection: %s noise-only train examples, bank of %d, SNR U%s, %.0f%% positives per batch",
        split.label_counts[0] if split.label_counts else "?",
        bank.shape[0],
        tuple(injection.snr_range),
        100 * injection.positive_fraction,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
