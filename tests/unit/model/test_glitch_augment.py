"""Train-time glitch augmentation: the bank holds one normalized unit-SNR glitch per detector row (nothing leaks
into the other detectors), and a batch gets ``snr * bank[c, i]`` in channel ``c`` of an example with the configured
probability, independently per detector, labels untouched."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from model.config import GlitchAugmentConfig, TrainerConfig
from model.glitch_augment import add_glitch_batches, add_glitches
from transforms.recipes.g2net import glitches as gl
from transforms.recipes.g2net import psd_models
from transforms.recipes.g2net.injection import LinearPath, glitch_bank, linear_part


def _path() -> LinearPath:
    psd = np.array(psd_models.network_psd(("H1", "L1", "V1"), 4096, 2048.0))
    return LinearPath(2048.0, 4096, (20.0, 500.0), 8, 0.1, psd, np.ones(3))


def test_glitch_bank_entries_are_single_detector_unit_snr_glitches():
    path = _path()
    spec = gl.GlitchSpec(rate=1.0, kinds=("blip",))
    bank = glitch_bank(3, seed=5, path=path, spec=spec)
    assert bank.shape == (3, 3, 4096) and bank.dtype == np.float32
    assert np.array_equal(bank, glitch_bank(3, seed=5, path=path, spec=spec))
    for c, detector in enumerate(("H1", "L1", "V1")):
        rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(8, c, 1)))
        (glitch,) = gl.draw_glitches(rng, gl.GlitchSpec(rate=1.0, kinds=("blip",), snr_range=(1.0, 1.0)), (detector,))
        assert glitch.kind == "blip" and glitch.snr == 1.0
        strain = gl.render_glitches([glitch])
        normalized = linear_part(strain, path)
        np.testing.assert_allclose(bank[c, 1], normalized[c], rtol=1e-5, atol=1e-6)
        assert np.all(np.delete(normalized, c, axis=0) == 0.0)


def test_add_glitches_per_detector_with_the_configured_probability():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(3, 5, 32)).astype(np.float32)
    cfg = GlitchAugmentConfig(probability=0.25, snr_range=(10.0, 10.0))
    strain = tf.zeros((4000, 3, 32))
    out = add_glitches(strain, tf.constant(bank), tf.constant([1, 2]), cfg).numpy()
    hit = np.abs(out).sum(axis=2) > 0
    assert hit.mean(axis=0) == pytest.approx([0.25] * 3, abs=0.03)
    assert np.mean(hit[:, 0] & hit[:, 2]) == pytest.approx(0.0625, abs=0.015)
    for b, c in zip(*np.nonzero(hit[:50]), strict=True):
        matches = [i for i in range(5) if np.allclose(out[b, c], 10.0 * bank[c, i])]
        assert len(matches) == 1
    off = add_glitches(strain, tf.constant(bank), tf.constant([1, 2]), GlitchAugmentConfig(probability=0.0))
    assert not np.any(off.numpy())


def test_glitch_batches_leave_labels_and_other_features_alone():
    bank = np.ones((3, 2, 16), dtype=np.float32)
    cfg = GlitchAugmentConfig(probability=1.0, snr_range=(2.0, 2.0))
    ds = tf.data.Dataset.from_tensors(({"strain": tf.zeros((4, 3, 16))}, tf.ones((4, 1))))
    ((features, label),) = list(add_glitch_batches(ds, bank, cfg, seed=0))
    np.testing.assert_allclose(features["strain"].numpy(), 2.0)
    np.testing.assert_allclose(label.numpy(), 1.0)


def test_config_refuses_glitches_on_a_model_with_other_inputs():
    with pytest.raises(ValueError, match="glitch_augment"):
        TrainerConfig.model_validate({"data": {"glitch_augment": {"probability": 0.1, "feature": "other"}}})
    with pytest.raises(ValueError):
        GlitchAugmentConfig(probability=0.1, snr_range=(5.0, 1.0))
