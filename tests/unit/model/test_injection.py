"""Train-time injection on a real small dataset (generated samples -> ``run_all``): the normalized shards of the
pipeline equal normalized noise + the injected ``L(h)``, the trainer's stream is noise-only examples plus bank
waveforms at the drawn SNRs, and a run trains with it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines.stages.run_all import run_all
from model import injection as model_injection
from model.config import load_trainer_config
from model.data import check_dataset
from model.errors import DatasetError
from model.train import train
from tests.support.paths import REPO
from transforms.config import DatasetConfig, load_config
from transforms.recipes.g2net import injection, strain
from transforms.recipes.g2net import sample as gw_sample
from transforms.recipes.g2net.preprocessing import StrainParams, normalize_reference
from transforms.recipes.g2net.waveform import render_injection

SEED = 3
TINY = [
    "train.epochs=1",
    "model.filters=[8, 8, 16, 16]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[16, 8]",
    "data.batch_size=8",
    "data.eval_batch_size=24",
    "train.verbose=0",
    "data.injection.enabled=true",
    "data.injection.bank_size=4",
]
_SPEC = {"uid": tf.io.FixedLenFeature([], tf.string), "strain": tf.io.FixedLenFeature([3, 4096], tf.float32)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """48 generated samples (2 per source) and their dataset from the real pipeline."""
    root = tmp_path_factory.mktemp("injection")
    raw, data = root / "raw", root / "ds"
    gw_sample.write_g2net_sample(str(raw), n=48, seed=SEED, signals_per_source=2)
    overrides = ["split.fractions={train: 0.6, val: 0.2, test: 0.2}"]
    run_all(load_config(DatasetConfig, "run_configs/demo.yaml", overrides), str(raw), str(data))
    return {"raw": raw, "data": data, "root": root}


def _norm(data: Path, split: str) -> dict[str, np.ndarray]:
    shards = sorted(str(p) for p in (data / "norm" / split).glob("norm_*.tfrecord"))
    parsed = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, _SPEC))
    return {e["uid"].decode(): e["strain"] for e in parsed.as_numpy_iterator()}


def _labels(data: Path, split: str) -> dict[str, int]:
    rows = {}
    for path in sorted((data / "norm" / split).glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows.update({row["uid"]: int(row["label"]) for row in csv.DictReader(handle)})
    return rows


def test_pipeline_positives_equal_normalized_noise_plus_injected_waveform(dataset):
    """Through the real build + tf.Transform normalize: shard(n + h) = normalize(n) + L(h) with the dataset's stats."""
    data = dataset["data"]
    stats = dict(np.load(data / "stats" / "train_stats.npz"))
    path = model_injection.read_linear_path(str(data))
    plans = {p.id: p for p in gw_sample.plan_samples(48, SEED, signals_per_source=2)}
    with open(dataset["raw"] / "injections.csv", newline="") as handle:
        truth = {row["id"]: row for row in csv.DictReader(handle)}
    checked = 0
    for split in ("train", "val", "test"):
        norm = _norm(data, split)
        for uid, label in _labels(data, split).items():
            if not label:
                continue
            noise = gw_sample.make_noise(SEED, plans[uid].index)
            h = render_injection(truth[uid])
            (noise_bp,) = strain.preprocess_arrays([noise], 3, 4096, 2048.0, (20.0, 500.0), 8, (1e-24, 1e-17), 0.25)
            injected = normalize_reference(noise_bp, stats, StrainParams()) + injection.linear_part(h, path)
            np.testing.assert_allclose(norm[uid], injected, rtol=0, atol=1e-4, err_msg=uid)
            # At unit SNR times the truth SNR: the bank's scaling reproduces the same example.
            rho = float(truth[uid]["snr"])
            unit = injection.linear_part(h / rho, path)
            np.testing.assert_allclose(norm[uid], injected - injection.linear_part(h, path) + rho * unit, atol=1e-4)
            checked += 1
    assert checked >= 20


def test_injection_stream_is_noise_plus_scaled_bank_entries(dataset):
    data = dataset["data"]
    config = load_trainer_config(
        str(REPO / "run_configs" / "train_g2net.yaml"),
        [
            *TINY,
            "data.injection.snr_range=[9, 9]",
            "data.augment.time_shift_max=0",
            "data.augment.sign_flip_prob=0",
            "data.augment.detector_swap_prob=0",
        ],
    )
    info = check_dataset(str(data), config)
    bank = np.random.default_rng(0).standard_normal((3, 3, 4096)).astype(np.float32) * 0.1
    labels = _labels(data, "train")
    norm = _norm(data, "train")
    noise = np.stack([norm[u] for u, label in labels.items() if label == 0])
    ds = model_injection.make_injection_dataset(info, config, bank)
    n_pos = n_all = 0
    for features, label in ds.take(12).as_numpy_iterator():
        assert features["strain"].shape == (8, 3, 4096) and label.shape == (8, 1)
        for x, y in zip(features["strain"], label[:, 0], strict=True):
            # Every example is one noise-only train example, plus 9 * one bank entry when labelled 1.
            candidates = x[None] - (9.0 * bank if y else np.zeros((1, 3, 4096), np.float32))
            distance = np.abs(candidates[:, None] - noise[None]).max(axis=(2, 3))
            assert distance.min() < 1e-5
            n_pos += int(y)
            n_all += 1
    assert 0.3 < n_pos / n_all < 0.7  # positive_fraction 0.5 over 96 draws


def test_training_with_injection_end_to_end(dataset):
    runs = dataset["root"] / "runs"
    run_dir = Path(
        train(str(dataset["data"]), str(REPO / "run_configs" / "train_g2net.yaml"), str(runs), overrides=TINY)
    )
    config = json.loads(next(run_dir.glob("*_config.json")).read_text())
    assert config["config"]["data"]["injection"]["enabled"] is True
    assert config["class_weight"] is None
    metrics = json.loads(next(run_dir.glob("*_metrics.json")).read_text())
    assert metrics["training"]["epochs_run"] == 1


def test_injection_refuses_a_dataset_without_g2net_stats(tmp_path):
    from model.synthetic import write_fake_dataset

    data = write_fake_dataset(str(tmp_path / "fake"), seed=0)
    with pytest.raises(DatasetError) as info:
        train(data, str(REPO / "run_configs" / "train_g2net.yaml"), str(tmp_path / "runs"), overrides=TINY)
    assert info.value.code == "dataset" and "'g2net'" in str(info.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_injection_config_is_checked():
    from transforms.config import ConfigError

    path = str(REPO / "run_configs" / "train_g2net.yaml")
    config = load_trainer_config(path, ["data.injection.enabled=true", "data.injection.prior={mass_range: [20, 30]}"])
    assert config.data.injection.prior == {"mass_range": [20, 30]}
    for overrides, named in [
        (["data.injection.enabled=true", "data.injection.feature=flux"], "'flux'"),
        (["data.injection.snr_range=[20, 4]"], "snr_range"),
        (["data.injection.positive_fraction=1.0"], "data.injection.positive_fraction"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_trainer_config(path, overrides)
        assert info.value.code == "config" and named in str(info.value)
