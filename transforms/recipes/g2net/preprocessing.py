"""tf.Transform preprocessing for strain: full-pass train statistics, then the seed's normalization order.

``strain_preprocessing_fn`` is a plain dict -> dict function (Beam appears only where it is run):

    raw strain (bandpassed in the build stage, float32 bytes, physical units ~1e-22)
      -> float64 -> periodogram per example (Tukey-windowed; same formula as ``signal.periodogram_psd``)
      -> [analyzer] average PSD over the train split's noise-only examples (labels in ``psd_labels``)
      -> whiten by the average PSD (``signal.whiten``) -> Tukey window (``signal.apply_tukey``)
      -> [analyzer] per-channel mean / mean-of-squares -> standardize (``signal.standardize``)
      -> float32 ``strain`` (n_channels, n_samples); ``uid``, ``target_id``, ``label`` pass through.

Powers of strain (~1e-44) underflow float32, so everything up to the final cast is float64 (tf.Transform
analyzers accept float64; only the outputs must be float32/int64/bytes). The numpy functions of
``transforms.recipes.g2net.signal`` are the reference: ``normalize_reference`` applies them with the same statistics
and the tests require equality to float tolerance.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.signal
import tensorflow as tf
import tensorflow_transform as tft

from transforms.contract import LABEL, STRAIN, TARGET_ID, UID
from transforms.recipes.g2net import signal

# Names of the analyzer results in the transform graph (read back into train_stats.npz).
STAT_NAMES = ("avg_psd", "channel_mean", "channel_std", "psd_examples")


@dataclass(frozen=True)
class StrainParams:
    """Everything the strain preprocessing needs; all from the dataset config, nothing global."""

    fs: float = 2048.0
    n_channels: int = 3
    n_samples: int = 4096
    band: tuple[float, float] = (20.0, 500.0)
    tukey_alpha: float = 0.1
    psd_labels: tuple[int, ...] = (0,)

    @property
    def n_freq(self) -> int:
        return self.n_samples // 2 + 1

    def psd_window(self) -> np.ndarray:
        """The periodic Tukey window of the PSD estimate: ``(n_samples,)`` float64."""
        return np.asarray(scipy.signal.get_window(("tukey", self.tukey_alpha), self.n_samples, fftbins=True))


def raw_feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    """Features of raw and split shards (docs/ARCHITECTURE.md section 3 plus the float32-bytes strain)."""
    return {
        UID: tf.io.FixedLenFeature([], tf.string),
        TARGET_ID: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        STRAIN: tf.io.FixedLenFeature([], tf.string),
    }


def decode_strain(serialized_strain: tf.Tensor, params: StrainParams) -> tf.Tensor:
    """float32 little-endian bytes ``[batch]`` -> ``[batch, n_channels, n_samples]`` float64."""
    flat = tf.io.decode_raw(serialized_strain, tf.float32, little_endian=True)
    return tf.cast(tf.reshape(flat, [-1, params.n_channels, params.n_samples]), tf.float64)


def tf_periodogram(x: tf.Tensor, params: StrainParams) -> tf.Tensor:
    """One-sided periodogram (1/Hz) of ``[batch, ch, n]`` float64: mirrors ``signal.periodogram_psd``."""
    window = params.psd_window()
    spec = tf.signal.rfft(x * tf.constant(window, tf.float64))
    power = tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2
    scale = np.full(params.n_freq, 2.0 / (params.fs * np.sum(window * window)))
    scale[0] /= 2.0  # DC and Nyquist have no mirrored bin
    if params.n_samples % 2 == 0:
        scale[-1] /= 2.0
    return power * tf.constant(scale, tf.float64)


def tf_whiten(x: tf.Tensor, psd: tf.Tensor, params: StrainParams) -> tf.Tensor:
    """Band-limited whitening of ``[batch, ch, n]`` by ``psd [ch, n_freq]``: mirrors ``signal.whiten``."""
    mask = tf.constant(signal.band_mask(params.n_samples, params.fs, params.band))
    norm = signal.whitening_norm(params.n_samples, params.fs, params.band)
    safe_psd = tf.where(mask, psd, tf.ones_like(psd))
    scale = tf.where(mask, norm / tf.sqrt(safe_psd), tf.zeros_like(psd))
    spec = tf.signal.rfft(x) * tf.cast(scale, tf.complex128)
    return tf.signal.irfft(spec, fft_length=[params.n_samples])


def _noise_psd_analyzers(x: tf.Tensor, label: tf.Tensor, params: StrainParams) -> tuple[tf.Tensor, tf.Tensor]:
    """[analyzers] average periodogram of the noise-only examples ``(ch, n_freq)`` and their count, float64."""
    psd_labels = tf.constant(list(params.psd_labels), tf.int64)
    is_noise = tf.cast(tf.reduce_any(tf.equal(label[:, None], psd_labels[None, :]), axis=1), tf.float64)
    psd_sum = tft.sum(tf_periodogram(x, params) * is_noise[:, None, None], reduce_instance_dims=False)
    psd_examples = tft.sum(is_noise)
    return psd_sum / psd_examples, psd_examples


def _name_stats(**stats: tf.Tensor) -> None:
    """Names analyzer results in the graph so the analyze stage can read them back from the saved transform."""
    for name, value in stats.items():
        tf.identity(value, name=name)


def strain_psd_fn(inputs: dict[str, tf.Tensor], params: StrainParams) -> dict[str, tf.Tensor]:
    """First analysis pass: only the average noise PSD (a preprocessing_fn whose output is just the label)."""
    avg_psd, psd_examples = _noise_psd_analyzers(decode_strain(inputs[STRAIN], params), inputs[LABEL], params)
    _name_stats(avg_psd=avg_psd, psd_examples=psd_examples)
    return {LABEL: tf.identity(inputs[LABEL])}


def strain_preprocessing_fn(
    inputs: dict[str, tf.Tensor], params: StrainParams, noise_psd: dict[str, np.ndarray] | None = None
) -> dict[str, tf.Tensor]:
    """The tf.Transform preprocessing_fn for strain examples (see the module docstring for the steps).

    With ``noise_psd`` (``avg_psd`` and ``psd_examples`` from a first ``strain_psd_fn`` pass) the average PSD
    is a graph constant and the function has a single analyzer phase, so the analysis streams its input.
    Without it, tf.Transform chains both phases itself, which makes runners hold the whole input between them.
    """
    x = decode_strain(inputs[STRAIN], params)
    label = inputs[LABEL]
    if noise_psd is None:
        avg_psd, psd_examples = _noise_psd_analyzers(x, label, params)
    else:
        avg_psd = tf.constant(noise_psd["avg_psd"], tf.float64)
        psd_examples = tf.constant(noise_psd["psd_examples"], tf.float64)

    # Whiten, window, then per-channel moments over all train samples (equal lengths: mean of means is exact).
    windowed = tf_whiten(x, avg_psd, params) * tf.constant(signal.tukey_window(params.n_samples, params.tukey_alpha))
    mean = tft.mean(tf.reduce_mean(windowed, axis=2), reduce_instance_dims=False)
    mean_sq = tft.mean(tf.reduce_mean(tf.square(windowed), axis=2), reduce_instance_dims=False)
    std = tf.sqrt(tf.maximum(mean_sq - tf.square(mean), 0.0))
    _name_stats(avg_psd=avg_psd, psd_examples=psd_examples, channel_mean=mean, channel_std=std)

    standardized = (windowed - mean[None, :, None]) / std[None, :, None]
    return {
        STRAIN: tf.cast(standardized, tf.float32),
        UID: tf.identity(inputs[UID]),
        TARGET_ID: tf.identity(inputs[TARGET_ID]),
        LABEL: tf.identity(label),
    }


def make_preprocessing_fn(params: StrainParams, noise_psd: dict[str, np.ndarray] | None = None):
    """``strain_preprocessing_fn`` bound to ``params`` (a picklable partial of a top-level function)."""
    return functools.partial(strain_preprocessing_fn, params=params, noise_psd=noise_psd)


def make_psd_fn(params: StrainParams):
    """``strain_psd_fn`` bound to ``params``: the first of the two streaming analysis passes."""
    return functools.partial(strain_psd_fn, params=params)


def normalize_reference(strain_bandpassed: np.ndarray, stats: dict[str, np.ndarray], params: StrainParams):
    """The numpy reference of the transform: ``signal.normalize_strain`` with the analyzed statistics."""
    return signal.normalize_strain(
        strain_bandpassed,
        stats["avg_psd"],
        stats["channel_mean"],
        stats["channel_std"],
        fs=params.fs,
        band=params.band,
        tukey_alpha=params.tukey_alpha,
    )
