"""GeM pooling, the warmup-cosine schedule, both networks and the trainer config schema."""

import os
import typing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from model.architectures import ARCHITECTURES, get_architecture  # noqa: E402
from model.config import (  # noqa: E402
    G2NetCNNConfig,
    ModelConfig,
    MultiBranchCNNConfig,
    TrainerConfig,
    load_trainer_config,
)
from model.layers import GeMPooling1D, WarmupCosineDecay  # noqa: E402
from model.networks import build_model  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from transforms.config import ConfigError  # noqa: E402

TINY_G2NET = G2NetCNNConfig(
    input_shape=None, filters=[4, 8], kernel_sizes=[8, 4], pool_sizes=[4, 4], dense_units=[8, 4], dropout=0.0
)


@pytest.fixture(scope="module")
def positive_batch():
    return np.random.default_rng(0).uniform(0.1, 2.0, size=(4, 50, 6)).astype(np.float32)


def test_gem_p1_equals_average_pooling(positive_batch):
    out = GeMPooling1D(p=1.0)(positive_batch)
    np.testing.assert_allclose(out, keras.layers.GlobalAveragePooling1D()(positive_batch), rtol=1e-5)
    assert tuple(out.shape) == (4, 6)


def test_gem_large_p_approaches_max_pooling(positive_batch):
    maxed = positive_batch.max(axis=1)
    # Mean of x^p over 50 steps is at least max^p / 50, so the p-th root is within a factor 50^(-1/p).
    np.testing.assert_allclose(GeMPooling1D(p=500.0)(positive_batch), maxed, rtol=0.01)
    gap_p3 = np.abs(GeMPooling1D(p=3.0)(positive_batch) - maxed).mean()
    gap_p50 = np.abs(GeMPooling1D(p=50.0)(positive_batch) - maxed).mean()
    assert gap_p50 < gap_p3


def test_gem_clamps_non_positive_inputs():
    x = np.array([[[-1.0], [0.0], [-3.0]]], dtype=np.float32)
    np.testing.assert_allclose(GeMPooling1D(p=3.0, eps=1e-4)(x), [[1e-4]], rtol=1e-4)


def test_gem_p_is_trainable_and_gets_a_gradient(positive_batch):
    layer = GeMPooling1D(p=3.0)
    layer.build(positive_batch.shape)
    assert [w.name for w in layer.trainable_weights] == ["p"]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(positive_batch))
    grad = tape.gradient(loss, layer.p)
    assert grad is not None and abs(float(grad)) > 0
    frozen = GeMPooling1D(p=3.0, trainable_p=False)
    frozen.build(positive_batch.shape)
    assert not frozen.trainable_weights and len(frozen.non_trainable_weights) == 1


def test_gem_serialization_round_trip(tmp_path, positive_batch):
    layer = GeMPooling1D(p=2.5, eps=1e-5, trainable_p=False, name="gem")
    clone = GeMPooling1D.from_config(layer.get_config())
    assert (clone.initial_p, clone.eps, clone.trainable_p) == (2.5, 1e-5, False)
    assert keras.saving.get_registered_name(GeMPooling1D) == "sigforge>GeMPooling1D"
    inputs = keras.Input(shape=(50, 6))
    model = keras.Model(inputs, GeMPooling1D(p=4.0, name="gem")(inputs))
    model.get_layer("gem").p.assign(5.5)
    path = str(tmp_path / "gem.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects: the layer is registered
    assert float(reloaded.get_layer("gem").p) == pytest.approx(5.5)
    np.testing.assert_allclose(reloaded(positive_batch), model(positive_batch), rtol=1e-6)


def test_gem_rejects_bad_arguments():
    with pytest.raises(ValueError, match="p_min"):
        GeMPooling1D(p=0.5)
    with pytest.raises(ValueError, match="eps"):
        GeMPooling1D(eps=0.0)


def test_warmup_cosine_schedule_values_and_config():
    schedule = WarmupCosineDecay(peak_lr=1e-3, total_steps=110, warmup_steps=10, final_lr=1e-5)
    lr = [float(schedule(step)) for step in (0, 4, 10, 60, 110, 500)]
    np.testing.assert_allclose(lr[:2], [1e-4, 5e-4], rtol=1e-5)
    assert lr[2] == pytest.approx(1e-3, rel=1e-5)
    assert lr[3] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5, rel=1e-5)  # half way through the cosine
    assert lr[4] == pytest.approx(1e-5, rel=1e-4) and lr[5] == pytest.approx(1e-5, rel=1e-4)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(clone(60)) == pytest.approx(lr[3])


def test_g2net_cnn_shapes_and_channels_first_input():
    model = build_model({"strain": (3, 4096)}, TINY_G2NET)
    assert isinstance(model.input, dict) and list(model.input) == ["strain"]
    assert model.get_layer("to_channels_last").output.shape[1:] == (4096, 3)
    assert model.get_layer("gem").output.shape[1:] == (8,)
    out = model({"strain": np.zeros((2, 3, 4096), np.float32)})
    assert tuple(out.shape) == (2, 1)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [8, 4, 1]  # three dense layers, the last the sigmoid score
    assert dense[-1].activation.__name__ == "sigmoid"


def test_g2net_cnn_default_config_has_four_blocks_and_builds_from_a_dict():
    defaults = G2NetCNNConfig()
    assert len(defaults.filters) == 4 and defaults.filters == sorted(defaults.filters)
    model = build_model(
        {"strain": (3, 512)},
        {"architecture": "g2net_cnn", "filters": [4], "kernel_sizes": [3], "pool_sizes": [2], "dense_units": [4]},
    )
    assert tuple(model({"strain": np.ones((1, 3, 512), np.float32)}).shape) == (1, 1)
    assert model.get_layer("block1_bn").momentum == defaults.bn_momentum == 0.99
    small = {"architecture": "g2net_cnn", "filters": [4], "kernel_sizes": [3], "pool_sizes": [2], "dense_units": [4]}
    tuned = build_model({"strain": (3, 512)}, {**small, "bn_momentum": 0.9})
    assert tuned.get_layer("block1_bn").momentum == 0.9


def test_multibranch_cnn_shapes():
    hp = MultiBranchCNNConfig(
        views=[
            {"feature": "global_view", "filters": [4, 8], "pooling": "flatten"},
            {"feature": "local_view", "filters": [4], "pooling": "gem"},
            {"feature": "flux_window", "filters": [4], "pooling": "avg"},
        ],
        scalar_features=["period", "depth"],
        head_units=[8],
        scalar_units=[4],
    )
    spec = {"global_view": (301,), "local_view": (31,), "flux_window": (100, 2), "period": (), "depth": (1,)}
    model = build_model(spec, hp)
    assert sorted(model.input.keys()) == sorted(spec)
    batch = {name: np.zeros((3, *shape), np.float32) for name, shape in spec.items()}
    assert tuple(model(batch).shape) == (3, 1)
    assert model.get_layer("global_view_flatten").output.shape[1:] == (76 * 8,)  # 301 -> 151 -> 76 bins
    assert model.get_layer("local_view_gem").output.shape[1:] == (4,)


def test_build_model_names_missing_inputs():
    with pytest.raises(ValueError, match=r"lacks the model inputs \['strain'\]"):
        build_model({"flux": (3, 100)}, TINY_G2NET)


def test_architecture_registry_covers_the_config_union():
    """Every ``model.architecture`` the config accepts has one registry entry (builder + input check), and back."""
    (union, _discriminator) = typing.get_args(ModelConfig)
    classes = {cls.model_fields["architecture"].default: cls for cls in typing.get_args(union)}
    assert {name: a.config_class for name, a in ARCHITECTURES.items()} == classes
    for name, architecture in ARCHITECTURES.items():
        assert architecture.name == name and callable(architecture.check_inputs)
    with pytest.raises(KeyError, match="unknown architecture 'transformer'; registered: g2net_cnn, multibranch_cnn"):
        get_architecture("transformer")


def test_shipped_trainer_configs_load():
    g2net = load_trainer_config(str(REPO / "run_configs" / "train_g2net.yaml"))
    assert g2net.model.architecture == "g2net_cnn" and g2net.model.input_shape == [3, 4096]
    assert g2net.data.injection.enabled and g2net.data.injection.snr_range == (4.0, 20.0)
    tce = load_trainer_config(str(REPO / "run_configs" / "train_tce.yaml"))
    assert tce.model.architecture == "multibranch_cnn"
    assert tce.model.input_features == ["global_view", "local_view"]
    assert TrainerConfig() == TrainerConfig.model_validate(TrainerConfig().model_dump(mode="json"))


def test_config_errors_name_the_key():
    path = str(REPO / "run_configs" / "train_g2net.yaml")

    def refusal(*overrides: str) -> ConfigError:
        with pytest.raises(ConfigError) as info:
            load_trainer_config(path, list(overrides))
        return info.value

    error = refusal("model.filterz=[8]")
    assert error.code == "unknown_key" and "'model.filterz'" in str(error) and "'filters'" in str(error)
    error = refusal("model.filters=[8, 16]")
    assert error.code == "config" and "'model'" in str(error) and "filters" in str(error)
    error = refusal("train.early_stopping.monitor=val_f1")
    assert error.code == "config" and "'train.early_stopping.monitor'" in str(error)
    error = refusal("data.augment.sign_flip_prob=0.5", "data.augment.feature=flux")
    assert error.code == "config" and "data.augment.feature" in str(error) and "'flux'" in str(error)
