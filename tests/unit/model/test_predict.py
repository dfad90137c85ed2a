"""Train/serve parity: ``sigforge predict`` on raw .npy files reproduces the trainer's scores of the same examples.

A small real chain: 48 generated samples -> ``run_all`` (build, split, analyze, normalize) -> a tiny model
trained by ``model.train.train``. Scoring the raw files of the val and test splits with ``model.predict`` (the
recipe's serving step with its own bandpass call, the saved tf.Transform graph, the saved .keras model) must give
the normalized shards' strain and the run's ``scores_{val,test}.csv`` to float tolerance. Bad inputs get an error
row and do not stop the rest."""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines.commands import cli
from beam_pipelines.stages.run_all import run_all
from model import predict as predict_module
from model.errors import DatasetError
from model.train import train
from tests.support.paths import REPO
from tests.support.run_artifacts import read_scores_csv
from transforms.config import DatasetConfig, load_config
from transforms.contract import STRAIN, encode_example
from transforms.recipes.g2net import sample as gw_sample

_LOG = logging.getLogger(__name__)
TOLERANCE = 1e-5
TINY = [
    "train.epochs=1",
    "model.filters=[8, 8, 16, 16]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[16, 8]",
    "data.batch_size=16",
    "data.eval_batch_size=24",
    "train.verbose=0",
    "data.injection.bank_size=8",  # the default train-time injection, with a small bank
]
_NORM_SPEC = {
    "uid": tf.io.FixedLenFeature([], tf.string),
    "strain": tf.io.FixedLenFeature([3, 4096], tf.float32),
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """48 raw samples, their dataset (real pipeline, several shards per split) and a tiny trained run."""
    root = tmp_path_factory.mktemp("predict")
    raw, data, runs = root / "raw", root / "ds", root / "runs"
    gw_sample.write_g2net_sample(str(raw), n=48, seed=3, signals_per_source=2)
    overrides = [
        "build.examples_per_shard=16",
        "split.examples_per_shard=8",
        "split.fractions={train: 0.5, val: 0.25, test: 0.25}",
    ]
    run_all(load_config(DatasetConfig, "run_configs/demo.yaml", overrides), str(raw), str(data))
    run_dir = train(str(data), str(REPO / "run_configs" / "train_g2net.yaml"), str(runs), name="tiny", overrides=TINY)
    return {"raw": raw, "data": data, "run": Path(run_dir)}


def _norm_strain(data: Path, split: str) -> dict[str, np.ndarray]:
    shards = sorted(str(p) for p in (data / "norm" / split).glob("norm_*.tfrecord"))
    parsed = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, _NORM_SPEC))
    return {e["uid"].decode(): e["strain"] for e in parsed.as_numpy_iterator()}


@pytest.mark.parametrize("split", ["val", "test"])
def test_predict_reproduces_the_run_scores(chain, split):
    uids, _, saved = read_scores_csv(str(chain["run"] / f"scores_{split}.csv"))
    assert len(uids) >= 6
    assert np.ptp(saved) > 1e-4  # the scores vary from example to example, so equality below means something
    paths = [gw_sample.sample_path(str(chain["raw"]), uid) for uid in uids]
    result = predict_module.predict(str(chain["run"]), paths)
    assert result.errors == []
    assert [uid for uid, _ in result.scores] == uids
    scores = np.array([score for _, score in result.scores])
    _LOG.info("%s: %d examples, max |predict - run score| = %.3g", split, len(uids), np.abs(scores - saved).max())
    np.testing.assert_allclose(scores, saved, rtol=0, atol=TOLERANCE)


def test_predict_features_equal_the_normalized_shards(chain):
    """The features predict feeds the model are the pipeline's normalized examples (bandpass + saved graph)."""
    predictor = predict_module.Predictor(str(chain["run"]))
    norm = _norm_strain(chain["data"], "test")
    uids = sorted(norm)
    datas = [Path(gw_sample.sample_path(str(chain["raw"]), uid)).read_bytes() for uid in uids]
    features = predictor.transform(predictor.serve(list(zip(uids, datas, strict=True))))
    assert [u.decode() for u in features["uid"].numpy()] == uids
    strain = features["strain"].numpy()
    expected = np.stack([norm[u] for u in uids])
    _LOG.info("test: max |predict features - normalized shards| = %.3g", np.abs(strain - expected).max())
    np.testing.assert_allclose(strain, expected, rtol=0, atol=TOLERANCE)
    # Without the bandpass the same graph gives other features: the parity above is not vacuous.
    unfiltered = [
        encode_example(u, u, 0, {STRAIN: np.load(io.BytesIO(d)).astype(np.float32)})
        for u, d in zip(uids, datas, strict=True)
    ]
    assert np.abs(predictor.transform(unfiltered)["strain"].numpy() - expected).max() > 0.1


def test_predict_cli_scores_a_folder_and_reports_bad_files(chain, tmp_path, caplog):
    uids, _, saved = read_scores_csv(str(chain["run"] / "scores_test.csv"))
    expected = dict(zip(uids, saved, strict=True))
    inputs = tmp_path / "inputs"
    (inputs / "nested").mkdir(parents=True)
    good = list(expected)[:3]
    for uid in good:
        shutil.copy(gw_sample.sample_path(str(chain["raw"]), uid), inputs / "nested" / f"{uid}.npy")
    strain = np.load(gw_sample.sample_path(str(chain["raw"]), good[0]))
    (inputs / "truncated.npy").write_bytes(Path(gw_sample.sample_path(str(chain["raw"]), good[0])).read_bytes()[:200])
    np.save(inputs / "two_channels.npy", strain[:2])
    with_nan = strain.copy()
    with_nan[1, 100] = np.nan
    np.save(inputs / "with_nan.npy", with_nan)
    (inputs / "notes.txt").write_text("not an input")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "scores.csv"
    missing = str(tmp_path / "missing.npy")
    args = ["predict", "--run", str(chain["run"]), "--input", str(inputs), missing, str(tmp_path / "empty")]
    assert cli.main([*args, "--out", str(out), "--batch-size", "4"]) == 1  # some inputs were not scored

    with open(out, newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {*good, "truncated", "two_channels", "with_nan", "missing", "empty"}
    for uid in good:
        assert rows[uid]["error"] == "" and abs(float(rows[uid]["score"]) - expected[uid]) <= TOLERANCE
    reasons = {
        "truncated": "truncated_npy",
        "two_channels": "wrong_shape",
        "with_nan": "non_finite",
        "missing": "missing",
        "empty": "no_npy_files",
    }
    for uid, reason in reasons.items():
        assert rows[uid]["score"] == "" and rows[uid]["error"].startswith(f"{reason}: "), rows[uid]
        assert reason in caplog.text
    assert "declares shape (2, 4096), expected (3, 4096)" in rows["two_channels"]["error"]
    # Exit code 0 and no error rows when every input is good.
    assert cli.main(["predict", "--run", str(chain["run"]), "--input", str(inputs / "nested"), "--out", str(out)]) == 0
    assert all(row["error"] == "" for row in csv.DictReader(io.StringIO(out.read_text())))


def test_predict_refuses_an_unusable_dataset(chain, tmp_path, caplog):
    npy = gw_sample.sample_path(str(chain["raw"]), read_scores_csv(str(chain["run"] / "scores_test.csv"))[0][0])
    with pytest.raises(DatasetError) as info:
        predict_module.predict(str(chain["run"]), [npy], data_dir=str(tmp_path / "nowhere"))
    assert info.value.code == "dataset" and "nowhere" in str(info.value)
    copy = tmp_path / "ds"
    shutil.copytree(chain["data"], copy, ignore=shutil.ignore_patterns("stats"))
    assert predict_module.main(["--run", str(chain["run"]), "--input", npy, "--data", str(copy)]) == 2
    assert "transform_fn is missing" in caplog.text
    # --data pointing at a copy of the training data gives the same scores (a copy's manifest is identical) ...
    shutil.rmtree(copy)
    shutil.copytree(chain["data"], copy)
    original = predict_module.predict(str(chain["run"]), [npy]).scores
    assert predict_module.predict(str(chain["run"]), [npy], data_dir=str(copy)).scores == original
    # ... and the bandpass really comes from the dataset's manifest: another band, another score (and a warning;
    # the edited manifest no longer matches the run's digests, so only with trust_artifacts).
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["g2net"]["bandpass"]["low_hz"] = 100.0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    caplog.clear()
    (changed,) = predict_module.predict(str(chain["run"]), [npy], data_dir=str(copy), trust_artifacts=True).scores
    assert abs(changed[1] - original[0][1]) > TOLERANCE
    assert "differs from the one run" in caplog.text


def test_a_recipe_without_a_serving_step_has_no_predict():
    with pytest.raises(DatasetError) as info:
        predict_module.serving_step(types.SimpleNamespace(recipe="tce"), "DATA")
    assert info.value.code == "dataset" and "'tce'" in str(info.value) and "DATA" in str(info.value)
    assert predict_module.serving_step(types.SimpleNamespace(recipe="g2net"), "DATA").input_suffix == ".npy"
