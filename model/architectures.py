"""The architecture registry: ``model.architecture`` -> its config class, network builder and input check.

Every place that depends on the network type looks it up here by name (``get_architecture``), never by
``isinstance``: ``model.networks.build_model`` builds through it, ``model.data`` checks the feature spec's
input shapes through it (before training, evaluation and predict). The trainer config's discriminated union
(``model.config.ModelConfig``) stays static because pydantic needs it; a test keeps the two in step.

Adding an architecture: its config class in ``model/config.py`` (with an ``architecture`` literal, added to
``ModelConfig``), its builder in ``model/networks.py`` and one ``Architecture`` entry below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from model.config import G2NetCNNConfig, MultiBranchCNNConfig
from model.errors import FeatureSpecError
from transforms.recipes.base import resolve

# Per-example shape (no batch axis) of every model input, e.g. {"strain": (3, 4096)}.
InputShapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class Architecture:
    """One network type.

    ``builder`` names (``"module:attribute"``) ``build(input_shapes, hparams) -> keras.Model``, resolved on use
    (``model.networks`` imports this registry). ``check_inputs(input_shapes, hparams, source)`` raises FeatureSpecError
    naming the input whose shape (in ``source``, e.g. the transformed feature spec) the network cannot take.
    """

    name: str
    config_class: type
    builder: str
    check_inputs: Callable[[InputShapes, Any, str], None]

    def build(self, input_shapes: InputShapes, hparams: Any):
        return resolve(self.builder)(input_shapes, hparams)


def check_g2net_cnn_inputs(shapes: InputShapes, hp: G2NetCNNConfig, source: str) -> None:
    shape = shapes[hp.input_feature]
    if len(shape) != 2:
        raise FeatureSpecError(
            f"model input '{hp.input_feature}' must be (channels, samples), has shape {list(shape)} in {source}"
        )
    if hp.input_shape is not None and list(shape) != list(hp.input_shape):
        raise FeatureSpecError(
            f"model input '{hp.input_feature}' has shape {list(shape)} in {source} but model.input_shape is "
            f"{hp.input_shape} (set model.input_shape to match, or null to take the spec's)"
        )


def check_multibranch_cnn_inputs(shapes: InputShapes, hp: MultiBranchCNNConfig, source: str) -> None:
    for view in hp.views:
        shape = shapes[view.feature]
        if len(shape) not in (1, 2):
            raise FeatureSpecError(
                f"view '{view.feature}' must be (bins,) or (bins, channels), has {list(shape)} in {source}"
            )
        if view.length is not None and shape[0] != view.length:
            raise FeatureSpecError(
                f"view '{view.feature}' has {shape[0]} bins in {source} but the config's length is {view.length}"
            )
    for name in hp.scalar_features:
        if list(shapes[name]) not in ([], [1]):
            raise FeatureSpecError(f"scalar feature '{name}' has shape {list(shapes[name])} in {source}")


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("g2net_cnn", G2NetCNNConfig, "model.networks:build_g2net_cnn", check_g2net_cnn_inputs),
        Architecture(
            "multibranch_cnn",
            MultiBranchCNNConfig,
            "model.networks:build_multibranch_cnn",
            check_multibranch_cnn_inputs,
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``; KeyError names the registered ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; registered: {', '.join(sorted(ARCHITECTURES))}") from None
