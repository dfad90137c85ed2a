"""``sigforge train --cv`` and the CV ensemble of ``sigforge predict`` on a k=3 k-fold dataset.

The dataset is ``tests/support/cv_fixture.py``'s: the layout the k-fold split/analyze/normalize stages will write
(``split/folds.json``, ``stats/cv_XX/``, ``norm/cv_XX/{train,val,test}/``, the manifest's split entry with mode
and k), made from today's stages: the real analyze and normalize run once per iteration on that iteration's folds,
so each iteration has its own statistics. A tiny model (1 epoch) is trained per iteration.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines.commands import cli
from model import cv as cv_module
from model import predict as predict_module
from model import train as train_module
from model.config import load_trainer_config
from model.errors import RunError
from model.kfold import read_iteration_tables, read_kfold
from model.synthetic import write_fake_dataset
from tests.support.cv_fixture import build_kfold_dataset
from tests.support.run_artifacts import read_scores_csv
from transforms.contract import SPLIT_DIR, TABLE_PATTERN
from transforms.recipes.g2net import sample as gw_sample

_LOG = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "run_configs" / "train_g2net.yaml")
K = 3
T_975_2 = 4.30265272974946  # Student t, 0.975 quantile, 2 degrees of freedom (tables)
TOLERANCE = 1e-5
TINY = [
    "train.epochs=1",
    "model.filters=[8, 8, 16, 16]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[16, 8]",
    "data.batch_size=16",
    "data.eval_batch_size=24",
    "train.learning_rate=3e-3",
    "train.verbose=0",
    "data.injection.bank_size=8",  # the default train-time injection, from each iteration's own statistics
]
_NORM_SPEC = {"uid": tf.io.FixedLenFeature([], tf.string), "strain": tf.io.FixedLenFeature([3, 4096], tf.float32)}


def _argv(data, out, *extra):
    argv = ["--data", str(data), "--config", CONFIG, "--out", str(out), "--name", "tiny"]
    for item in TINY:
        argv += ["--set", item]
    return [*argv, *extra]


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    paths = build_kfold_dataset(root, k=K)
    runs = root / "runs"
    assert train_module.main(_argv(paths["data"], runs, "--cv")) == 0
    (run,) = runs.iterdir()
    return {**paths, "run": run}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _metrics(run: Path) -> dict:
    (path,) = run.glob("*_metrics.json")
    return _json(path)


def _fixture_folds(data: Path) -> dict[str, int]:
    """uid -> fold, read from the split stage's fold folders (``split/fold_NN``)."""
    folds = {}
    for fold in range(K):
        for table in sorted((data / SPLIT_DIR / f"fold_{fold:02d}").glob(TABLE_PATTERN)):
            folds.update({row["uid"]: fold for row in _csv_rows(table)})
    return folds


def test_cv_trains_one_run_per_iteration(cv):
    run = cv["run"]
    assert run.name.startswith("tiny_cv_")
    record = _json(run / "cv_run.json")
    assert record["kind"] == "cv" and record["folds"]["k"] == K and record["folds"]["mode"] == "kfold"
    assert [item["iteration"] for item in record["iterations"]] == list(range(K))
    plan = _json(cv["data"] / "split" / "folds.json")["iterations"]
    for index, item in enumerate(record["iterations"]):
        folder = run / f"iter_{index:02d}"
        assert item["run_dir"] == folder.name and (run / item["model"]).is_file()
        assert {k: item[k] for k in ("train", "val", "test")} == {k: plan[index][k] for k in ("train", "val", "test")}
        (config_path,) = folder.glob("*_config.json")
        saved = _json(config_path)
        assert saved["config"]["data"]["subdir"] == f"norm/cv_{index:02d}" == item["data_subdir"]
        assert saved["config"]["data"]["stats_subdir"] == f"stats/cv_{index:02d}" == item["stats_subdir"]
        for name in ("scores_val.csv", "scores_test.csv", "history.csv"):
            assert (folder / name).is_file()
    assert {p.name for p in run.iterdir()} == {
        *(f"iter_{i:02d}" for i in range(K)),
        "cv_run.json",
        "cv_metrics.csv",
        "oof_predictions.csv",
        "summary.json",
    }


def test_oof_scores_every_example_once_by_the_iteration_that_held_it_out(cv):
    rows = _csv_rows(cv["run"] / "oof_predictions.csv")
    assert list(rows[0]) == ["uid", "target_id", "label", "fold", "iteration", "score"]
    fold_of = _fixture_folds(cv["data"])
    uids = [r["uid"] for r in rows]
    assert len(uids) == len(set(uids)) == len(fold_of) and set(uids) == set(fold_of)
    tested_by = {item["test"][0]: item["iteration"] for item in _json(cv["data"] / "split/folds.json")["iterations"]}
    scores = {}
    for index in range(K):
        ids, labels, values = read_scores_csv(str(cv["run"] / f"iter_{index:02d}" / "scores_test.csv"))
        for uid, label, value in zip(ids, labels, values, strict=True):
            scores[uid] = (index, int(label), float(value))
    train_targets = {}
    for index in range(K):
        for split in ("train", "val"):
            for table in (cv["data"] / "norm" / f"cv_{index:02d}" / split).glob(TABLE_PATTERN):
                train_targets.setdefault(index, set()).update(r["target_id"] for r in _csv_rows(table))
    for row in rows:
        fold, iteration = int(row["fold"]), int(row["iteration"])
        assert fold == fold_of[row["uid"]] and iteration == tested_by[fold]
        assert scores[row["uid"]] == (iteration, int(row["label"]), pytest.approx(float(row["score"]), rel=1e-8))
        assert row["target_id"] not in train_targets[iteration]  # the scoring model never saw the target


def test_cv_metrics_are_the_iterations_test_metrics(cv):
    rows = _csv_rows(cv["run"] / "cv_metrics.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(K))
    for row in rows:
        saved = _metrics(cv["run"] / row["run_dir"])
        test = saved["splits"]["test"]
        assert saved["threshold"]["chosen_on"] == "val"
        assert float(row["threshold"]) == pytest.approx(saved["threshold"]["value"], rel=1e-8)
        assert int(row["n_test"]) == test["n_examples"] and int(row["n_positive"]) == test["n_positive"]
        for name in ("roc_auc", "pr_auc", "accuracy", "f1", "precision", "recall"):
            value = test[name]
            assert (row[name] == "") if value is None else float(row[name]) == pytest.approx(value, rel=1e-8)


def test_summary_intervals_equal_a_hand_computation(cv):
    summary = _json(cv["run"] / "summary.json")
    assert summary["k"] == summary["iterations"] == K and summary["level"] == 0.95
    tests = [_metrics(cv["run"] / f"iter_{i:02d}")["splits"]["test"] for i in range(K)]
    for name in ("roc_auc", "pr_auc", "accuracy", "f1"):
        values = [t[name] for t in tests]
        mean = sum(values) / K
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (K - 1))
        half = T_975_2 * sd / math.sqrt(K)
        got = summary["metrics"][name]
        assert got["n"] == K and got["mean"] == pytest.approx(mean, rel=1e-12)
        assert got["sd"] == pytest.approx(sd, rel=1e-9, abs=1e-15)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((mean - half, mean + half), rel=1e-9, abs=1e-15)
    # The pooled out-of-fold ROC-AUC, by hand: P(score of a positive > score of a negative), ties one half.
    rows = _csv_rows(cv["run"] / "oof_predictions.csv")
    pos = [float(r["score"]) for r in rows if r["label"] == "1"]
    neg = [float(r["score"]) for r in rows if r["label"] == "0"]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert summary["oof"]["n_examples"] == len(rows) and summary["oof"]["n_positive"] == len(pos)
    assert summary["oof"]["roc_auc"] == pytest.approx(wins / (len(pos) * len(neg)), rel=1e-12)
    _LOG.info("summary.json: %s", json.dumps({k: summary[k] for k in ("k", "oof")}))


def test_out_of_fold_coverage_is_asserted(cv, tmp_path):
    """A scores file that also scores an example of another fold breaks exactly-once: RunError oof_coverage."""
    copy = tmp_path / "run"
    shutil.copytree(cv["run"], copy)
    other = (copy / "iter_01" / "scores_test.csv").read_text().splitlines()[1]
    with open(copy / "iter_00" / "scores_test.csv", "a") as handle:
        handle.write(other + "\n")
    kfold = read_kfold(str(cv["data"]))
    tables = read_iteration_tables(str(cv["data"]), load_trainer_config(CONFIG), kfold)
    with pytest.raises(RunError) as info:
        cv_module.collect(str(copy), kfold, tables)
    assert info.value.code == "oof_coverage" and "scored more than once" in str(info.value)


def _raw(cv, uid: str) -> str:
    return gw_sample.sample_path(str(cv["raw"]), uid)


def test_predict_on_a_cv_run_is_the_mean_of_the_iteration_models(cv, tmp_path):
    fold_of = _fixture_folds(cv["data"])
    uids = [u for f in range(K) for u in sorted(u for u in fold_of if fold_of[u] == f)[:2]]
    paths = [_raw(cv, u) for u in uids]
    each = []
    for index in range(K):
        result = predict_module.predict(str(cv["run"] / f"iter_{index:02d}"), paths)
        assert [u for u, _ in result.scores] == uids
        each.append(np.array([s for _, s in result.scores]))
    ensemble = predict_module.predict(str(cv["run"]), paths)
    assert ensemble.errors == [] and [u for u, _ in ensemble.scores] == uids
    mean = np.mean(each, axis=0)
    np.testing.assert_allclose([s for _, s in ensemble.scores], mean, rtol=0, atol=1e-7)
    assert np.ptp(np.stack(each), axis=0).max() > 1e-6  # the iteration models differ: the mean means something
    # The CLI: score = the mean, score_iter_XX = each iteration model's; a missing input is an error row (exit 1).
    out = tmp_path / "scores.csv"
    argv = ["predict", "--run", str(cv["run"]), "--input", *paths, str(tmp_path / "missing.npy")]
    assert cli.main([*argv, "--out", str(out), "--per-iteration"]) == 1
    rows = _csv_rows(out)
    assert list(rows[0]) == ["id", "path", "score", "error", *(f"score_iter_{i:02d}" for i in range(K))]
    for j, row in enumerate(rows[: len(uids)]):
        assert row["id"] == uids[j] and float(row["score"]) == pytest.approx(mean[j], abs=1e-8)
        assert [float(row[f"score_iter_{i:02d}"]) for i in range(K)] == pytest.approx([e[j] for e in each], abs=1e-8)
    assert rows[-1]["id"] == "missing" and rows[-1]["error"].startswith("missing: ") and rows[-1]["score"] == ""


def _norm_strain(folder: Path) -> dict[str, np.ndarray]:
    shards = sorted(str(p) for p in folder.glob("norm_*.tfrecord"))
    parsed = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, _NORM_SPEC))
    return {e["uid"].decode(): e["strain"] for e in parsed.as_numpy_iterator()}


def test_each_iteration_model_sees_inputs_normalized_with_its_own_statistics(cv):
    """An iteration's predict gives its own norm/cv_XX features (and its run's test scores), which differ from
    another iteration's normalization of the same example."""
    for index in range(K):
        run = cv["run"] / f"iter_{index:02d}"
        predictor = predict_module.Predictor(str(run))
        own = _norm_strain(cv["data"] / "norm" / f"cv_{index:02d}" / "test")
        uids = sorted(own)[:4]
        items = [(u, Path(_raw(cv, u)).read_bytes()) for u in uids]
        strain = predictor.transform(predictor.serve(items))["strain"].numpy()
        np.testing.assert_allclose(strain, np.stack([own[u] for u in uids]), rtol=0, atol=TOLERANCE)
        other = (index + 1) % K  # the same examples are in a train or val split of the next iteration
        theirs = {}
        for split in ("train", "val"):
            theirs.update(_norm_strain(cv["data"] / "norm" / f"cv_{other:02d}" / split))
        assert np.abs(strain - np.stack([theirs[u] for u in uids])).max() > 1e-3
        ids, _, saved = read_scores_csv(str(run / "scores_test.csv"))
        scores = dict(predict_module.predict(str(run), [_raw(cv, u) for u in ids]).scores)
        np.testing.assert_allclose([scores[u] for u in ids], saved, rtol=0, atol=TOLERANCE)


def test_iteration_trains_one_iteration_as_an_ordinary_run(cv, tmp_path):
    assert train_module.main(_argv(cv["data"], tmp_path, "--iteration", "1")) == 0
    (run,) = tmp_path.iterdir()
    (config_path,) = run.glob("*_config.json")
    data = _json(config_path)["config"]["data"]
    assert (data["subdir"], data["stats_subdir"]) == ("norm/cv_01", "stats/cv_01")
    ids = read_scores_csv(str(run / "scores_test.csv"))[0]
    assert sorted(ids) == sorted(read_scores_csv(str(cv["run"] / "iter_01" / "scores_test.csv"))[0])


def _refusal(caplog, argv) -> str:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="model.train"):
        assert train_module.main(argv) == 2
    (record,) = [r for r in caplog.records if r.name == "model.train" and r.levelno == logging.ERROR]
    assert "\n" not in record.getMessage()
    return record.code


def test_refusals_exit_2_with_their_code(cv, tmp_path, caplog):
    data, out = cv["data"], tmp_path / "runs"
    assert _refusal(caplog, _argv(data, out)) == "kfold_needs_cv"
    assert _refusal(caplog, _argv(data, out, "--iteration", "3")) == "no_such_iteration"
    mixed = ["--set", "data.subdir=norm/cv_01", "--set", "data.stats_subdir=stats/cv_00"]
    assert _refusal(caplog, _argv(data, out, *mixed)) == "cv_stats_mismatch"
    plain = Path(write_fake_dataset(str(tmp_path / "plain"), seed=0))
    assert _refusal(caplog, _argv(plain, out, "--cv")) == "not_kfold"
    assert _refusal(caplog, _argv(plain, out, "--iteration", "0")) == "not_kfold"
    broken = tmp_path / "broken"
    (broken / "split").mkdir(parents=True)
    shutil.copy(data / "manifest.json", broken / "manifest.json")
    plan = _json(data / "split" / "folds.json")
    plan["iterations"][2]["test"] = [0]  # fold 0 tested twice, fold 2 never
    (broken / "split" / "folds.json").write_text(json.dumps(plan))
    assert _refusal(caplog, _argv(broken, out, "--cv")) == "bad_folds"
    assert not out.exists()  # nothing was written by any refusal


def test_predict_refuses_an_incomplete_cv_run(cv, tmp_path, caplog):
    copy = tmp_path / "run"
    shutil.copytree(cv["run"], copy)
    shutil.rmtree(copy / "iter_02")
    npy = _raw(cv, sorted(_fixture_folds(cv["data"]))[0])
    assert predict_module.main(["--run", str(copy), "--input", npy]) == 2
    assert "iter_02" in caplog.text and "missing" in caplog.text
