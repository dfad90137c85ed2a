"""Keras 3 functional networks; every size comes from the model config, every input shape from the data.

``build_model(input_spec, hparams)`` builds the network registered under ``hparams.architecture``
(``model/architectures.py``):

* ``g2net_cnn``: the seed's 1D CNN for strain ``(channels, samples)`` = ``(3, 4096)`` stored channels-first.
* ``multibranch_cnn``: one Conv1D branch per light-curve view (``(bins,)`` or ``(bins, channels)``), a dense
  branch for scalar features, concatenated into a dense head.

Both end in ``Dense(1, sigmoid)`` named ``score``: the output is P(label = 1), shape ``(batch, 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import layers
from pydantic import TypeAdapter

from model.architectures import get_architecture
from model.config import G2NetCNNConfig, ModelConfig, MultiBranchCNNConfig
from model.layers import GeMPooling1D

InputSpec = Mapping[str, Sequence[int]]


def build_model(input_spec: InputSpec, hparams: G2NetCNNConfig | MultiBranchCNNConfig | Mapping[str, Any]):
    """Builds the network named by ``hparams.architecture``.

    Args:
      input_spec: per-example shape (no batch axis) of every input feature, e.g. ``{"strain": (3, 4096)}``.
      hparams: a model config (or its dict form, validated here).
    Returns:
      An uncompiled ``keras.Model`` with one named input per feature and output ``score`` (batch, 1).
    """
    if isinstance(hparams, Mapping):
        hparams = TypeAdapter(ModelConfig).validate_python(dict(hparams))
    missing = [name for name in hparams.input_features if name not in input_spec]
    if missing:
        raise ValueError(f"input_spec lacks the model inputs {missing} (has {sorted(input_spec)})")
    shapes = {name: tuple(input_spec[name]) for name in hparams.input_features}
    return get_architecture(hparams.architecture).build(shapes, hparams)


def _dense_head(x, units: Sequence[int], activation: str, dropout: float, prefix: str):
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation=activation, name=f"{prefix}_dense{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return x


def build_g2net_cnn(input_spec: Mapping[str, tuple[int, ...]], hp: G2NetCNNConfig) -> keras.Model:
    """Conv blocks (Conv1D -> BN -> activation -> MaxPool1D) -> GeM over time -> dense layers -> sigmoid.

    Args:
      input_spec: ``hp.input_feature`` -> ``(channels, samples)``, channels-first as stored (G2Net: ``(3, 4096)``,
        H1/L1/V1).
    """
    input_shape = tuple(input_spec[hp.input_feature])
    if len(input_shape) != 2:
        raise ValueError(f"g2net_cnn needs a (channels, samples) input, got shape {input_shape}")
    inputs = keras.Input(shape=input_shape, name=hp.input_feature, dtype="float32")
    # (batch, channels, samples) -> (batch, samples, channels) for Conv1D.
    x = layers.Permute((2, 1), name="to_channels_last")(inputs)
    for i, (filters, kernel, pool) in enumerate(zip(hp.filters, hp.kernel_sizes, hp.pool_sizes, strict=True), start=1):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=hp.bn_momentum, name=f"block{i}_bn")(x)
        x = layers.Activation(hp.activation, name=f"block{i}_act")(x)
        x = layers.MaxPooling1D(pool, padding="same", name=f"block{i}_pool")(x)
    x = GeMPooling1D(p=hp.gem_p, eps=hp.gem_eps, trainable_p=hp.gem_trainable, name="gem")(x)
    x = _dense_head(x, hp.dense_units, hp.activation, hp.dropout, "head")
    outputs = layers.Dense(1, activation="sigmoid", name="score", dtype="float32")(x)
    return keras.Model({hp.input_feature: inputs}, outputs, name="g2net_cnn")


def build_multibranch_cnn(input_spec: Mapping[str, tuple[int, ...]], hp: MultiBranchCNNConfig) -> keras.Model:
    """One Conv1D branch per view, a dense branch over the scalars, concatenated -> dense head -> sigmoid.

    Args:
      input_spec: views ``(bins,)`` or ``(bins, channels)``; scalars ``()`` or ``(1,)``.
    """
    inputs, branches = [], []
    for view in hp.views:
        shape = input_spec[view.feature]
        if len(shape) not in (1, 2):
            raise ValueError(f"view '{view.feature}' must be (bins,) or (bins, channels), got shape {shape}")
        inp = keras.Input(shape=shape, name=view.feature, dtype="float32")
        inputs.append(inp)
        x = layers.Reshape((shape[0], 1), name=f"{view.feature}_expand")(inp) if len(shape) == 1 else inp
        for b, filters in enumerate(view.filters, start=1):
            for c in range(1, view.convs_per_block + 1):
                x = layers.Conv1D(
                    filters,
                    view.kernel_size,
                    padding="same",
                    activation=hp.activation,
                    name=f"{view.feature}_block{b}_conv{c}",
                )(x)
            x = layers.MaxPooling1D(
                view.pool_size, strides=view.pool_strides, padding="same", name=f"{view.feature}_block{b}_pool"
            )(x)
        if view.pooling == "flatten":
            x = layers.Flatten(name=f"{view.feature}_flatten")(x)
        elif view.pooling == "gem":
            x = GeMPooling1D(p=hp.gem_p, eps=hp.gem_eps, name=f"{view.feature}_gem")(x)
        else:
            x = layers.GlobalAveragePooling1D(name=f"{view.feature}_avg")(x)
        branches.append(x)
    if hp.scalar_features:
        scalars = []
        for name in hp.scalar_features:
            shape = input_spec[name]
            if tuple(shape) not in ((), (1,)):
                raise ValueError(f"scalar feature '{name}' must have shape [] or [1], got {shape}")
            inp = keras.Input(shape=shape, name=name, dtype="float32")
            inputs.append(inp)
            scalars.append(layers.Reshape((1,), name=f"{name}_as_vector")(inp))
        x = scalars[0] if len(scalars) == 1 else layers.Concatenate(name="scalars")(scalars)
        branches.append(_dense_head(x, hp.scalar_units, hp.activation, 0.0, "scalars"))
    x = branches[0] if len(branches) == 1 else layers.Concatenate(name="branches")(branches)
    x = _dense_head(x, hp.head_units, hp.activation, hp.dropout, "head")
    outputs = layers.Dense(1, activation="sigmoid", name="score", dtype="float32")(x)
    return keras.Model({inp.name: inp for inp in inputs}, outputs, name="multibranch_cnn")
