"""K-fold cross-validation (split.mode: kfold): fold assignment, the folds' layout, every iteration's statistics
against a numpy recomputation over its train folds, the normalized iterations, the audit and the report."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict

import numpy as np
import pytest
import tensorflow as tf

from transforms.config import ConfigError, DatasetConfig, load_config
from transforms.contract import example_keys, fold_name
from transforms.splitting import assign_fold, cv_iterations, fold_roles, kfold_assignment

K = 5
KFOLD = ["split.mode=kfold", f"split.k={K}", "split.stratify=true"]


# ---- assignment and iterations (pure) ----------------------------------------------------------------------------


def test_fold_is_a_pure_function_of_the_target_without_stratification():
    targets = {f"star-{i}": i % 2 for i in range(2000)}
    folds = kfold_assignment(targets, K, "s")
    assert folds == {t: assign_fold(t, K, "s") for t in targets}
    sizes = Counter(folds.values())
    assert set(sizes) == set(range(K)) and min(sizes.values()) > 300  # ~400 each


def test_stratified_folds_hold_every_label_evenly():
    targets = {f"t{i}": int(i % 7 == 0) for i in range(503)}
    folds = kfold_assignment(targets, K, "salt", stratify=True)
    per_label = Counter((folds[t], label) for t, label in targets.items())
    for label in (0, 1):
        counts = [per_label[(fold, label)] for fold in range(K)]
        assert max(counts) - min(counts) <= 1, counts
    sizes = Counter(folds.values()).values()
    assert max(sizes) - min(sizes) <= 1
    assert kfold_assignment(targets, K, "salt", stratify=True) == folds  # deterministic


def test_iterations_follow_the_rule():
    iterations = cv_iterations(K)
    assert [it["test"] for it in iterations] == [[i] for i in range(K)]
    assert [it["val"] for it in iterations] == [[(i + 1) % K] for i in range(K)]
    for it in iterations:
        roles = fold_roles(it)
        assert sorted(roles) == list(range(K)) and sorted(it["train"]) == [f for f, r in roles.items() if r == "train"]
    assert all(it["val"] == [] and len(it["train"]) == K - 1 for it in cv_iterations(K, "none"))


def test_config_refuses_keys_of_another_mode_and_too_few_folds():
    with pytest.raises(ConfigError, match="k: only for mode: kfold"):
        load_config(DatasetConfig, "run_configs/g2net.yaml", ["split.k=5"])
    with pytest.raises(ConfigError, match="no train fold"):
        load_config(DatasetConfig, "run_configs/g2net.yaml", ["split.mode=kfold", "split.k=2"])
    config = load_config(
        DatasetConfig, "run_configs/g2net.yaml", ["split.mode=kfold", "split.k=2", "split.cv_val=none"]
    )
    assert config.split.k == 2


def test_hash_config_dump_is_unchanged_by_the_modes():
    config = load_config(DatasetConfig, "run_configs/g2net.yaml")
    assert sorted(config.model_dump(mode="json")["split"]) == ["examples_per_shard", "fractions", "salt"]
    kfold = load_config(DatasetConfig, "run_configs/g2net.yaml", KFOLD).model_dump(mode="json")["split"]
    assert (kfold["mode"], kfold["k"], kfold["stratify"], "time_column" in kfold) == ("kfold", K, True, False)


def test_filter_is_refused_on_k_folds():
    from beam_pipelines.stages.filter import check_filter_config

    config = load_config(DatasetConfig, "run_configs/filter_example.yaml", KFOLD)
    with pytest.raises(ConfigError) as refused:
        check_filter_config(config)
    assert refused.value.code == "filter_kfold_unsupported"


# ---- the chain on a generated G2Net set --------------------------------------------------------------------------


def _rows(folder):
    rows = []
    for path in sorted(folder.glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _records(paths):
    return [bytes(r) for r in tf.data.TFRecordDataset([str(p) for p in paths]).as_numpy_iterator()]


@pytest.fixture(scope="module")
def kfold_chain(tmp_path_factory):
    from beam_pipelines.stages.run_all import run_all
    from transforms.recipes.g2net import sample as gw_sample

    raw = tmp_path_factory.mktemp("kfold_raw")
    gw_sample.write_g2net_sample(str(raw), n=200, seed=21, signals_per_source=2)
    out = tmp_path_factory.mktemp("kfold") / "ds"
    overrides = ["build.examples_per_shard=64", "split.examples_per_shard=24", *KFOLD]
    config = load_config(DatasetConfig, "run_configs/demo.yaml", overrides)
    result = run_all(config, str(raw), str(out))
    return {"out": out, "config": config, "manifest": result}


def test_folds_are_disjoint_by_target_at_the_record_level(kfold_chain):
    out, stages = kfold_chain["out"], kfold_chain["manifest"]["stages"]
    target_folds, labels = defaultdict(set), defaultdict(list)
    for i in range(K):
        for record in _records(sorted((out / "split" / fold_name(i)).glob(f"{fold_name(i)}_shard_*.tfrecord"))):
            _, target, label = example_keys(record)
            target_folds[target].add(i)
            labels[target].append(label)
    assert all(len(folds) == 1 for folds in target_folds.values())
    expected = kfold_assignment({t: max(v) for t, v in labels.items()}, K, "sigforge-v1", stratify=True)
    assert {t: folds.pop() for t, folds in target_folds.items()} == expected
    assert sum(len(v) for v in labels.values()) == stages["build"]["written"] == stages["split"]["written"]


def test_folds_json_is_the_layout(kfold_chain):
    out, split = kfold_chain["out"], kfold_chain["manifest"]["stages"]["split"]
    plan = json.loads((out / "split" / "folds.json").read_text())
    assert (plan["mode"], plan["k"], plan["salt"], plan["stratify"]) == ("kfold", K, "sigforge-v1", True)
    assert plan["rule"] == {"test": "i", "val": "(i+1) % k", "train": "rest"}
    assert [it["name"] for it in plan["iterations"]] == [f"cv_{i:02d}" for i in range(K)]
    assert [{k: it[k] for k in ("iteration", "train", "val", "test")} for it in plan["iterations"]] == cv_iterations(K)
    for fold in plan["folds"]:
        rows = _rows(out / "split" / fold["name"])
        assert fold["examples"] == len(rows) == split["splits"][fold["name"]]["examples"]
        assert fold["targets"] == len({r["target_id"] for r in rows})
        assert fold["positives"] == sum(r["label"] == "1" for r in rows)
    positives = [fold["positive_targets"] for fold in plan["folds"]]
    assert max(positives) - min(positives) <= 1  # stratified


def test_every_iteration_statistics_equal_numpy_over_its_train_folds(kfold_chain):
    from transforms.recipes.g2net import preprocessing, signal
    from transforms.recipes.g2net.recipe import strain_params

    out, config = kfold_chain["out"], kfold_chain["config"]
    params = strain_params(config)
    spec = preprocessing.raw_feature_spec()
    analyzed = kfold_chain["manifest"]["stages"]["analyze"]["iterations"]
    for it in cv_iterations(K):
        name = f"cv_{it['iteration']:02d}"
        paths = [p for j in it["train"] for p in sorted((out / "split" / fold_name(j)).glob("*.tfrecord"))]
        parsed = [tf.io.parse_single_example(r, spec) for r in _records(paths)]
        x = np.stack([np.frombuffer(e["strain"].numpy(), "<f4").reshape(3, 4096).astype(np.float64) for e in parsed])
        labels = np.array([int(e["label"]) for e in parsed])
        window = ("tukey", params.tukey_alpha)
        psd = np.mean([signal.periodogram_psd(xi, params.fs, window=window)[1] for xi in x[labels == 0]], axis=0)
        windowed = np.stack([signal.apply_tukey(signal.whiten(xi, psd, params.fs, params.band), 0.1) for xi in x])
        with np.load(out / "stats" / name / "train_stats.npz") as stats:
            assert stats["psd_examples"] == (labels == 0).sum()
            np.testing.assert_allclose(stats["avg_psd"], psd, rtol=1e-12)
            np.testing.assert_allclose(stats["channel_mean"], windowed.mean(axis=(0, 2)), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(stats["channel_std"], windowed.std(axis=(0, 2)), rtol=1e-12)
        entry = analyzed[name]
        assert entry["train_folds"] == [fold_name(j) for j in it["train"]]
        assert sum(entry["read_by_fold"].values()) == len(parsed) == entry["train_examples"]
        assert set(entry["read_by_fold"]) == set(entry["train_folds"])
        assert all(
            seen == {"read": len(x), "handed": len(x), "analyzed": len(x)}
            for seen in entry["analyzed_examples"].values()
        )
        assert (out / "stats" / name / "transform_fn").is_dir()


def test_normalized_iterations_hold_their_folds_in_the_norm_layout(kfold_chain):
    from transforms.recipes.g2net import preprocessing
    from transforms.recipes.g2net.recipe import strain_params

    out, config = kfold_chain["out"], kfold_chain["config"]
    fold_uids = {i: {r["uid"] for r in _rows(out / "split" / fold_name(i))} for i in range(K)}
    for it in cv_iterations(K):
        name = f"cv_{it['iteration']:02d}"
        for split in ("train", "val", "test"):
            folder = out / "norm" / name / split
            assert sorted(folder.glob(f"norm_{split}_shard_*.tfrecord")), folder
            assert {r["uid"] for r in _rows(folder)} == set().union(*(fold_uids[j] for j in it[split]))
        # the test fold normalized with this iteration's statistics, not another's
        with np.load(out / "stats" / name / "train_stats.npz") as loaded:
            stats = dict(loaded)
        spec = {"strain": tf.io.FixedLenFeature([3, 4096], tf.float32), "uid": tf.io.FixedLenFeature([], tf.string)}
        norm = tf.io.parse_single_example(_records(sorted((out / "norm" / name / "test").glob("*.tfrecord")))[0], spec)
        raw = {
            example_keys(r)[0]: r
            for r in _records(sorted((out / "split" / fold_name(it["iteration"])).glob("*.tfrecord")))
        }
        parsed = tf.io.parse_single_example(raw[norm["uid"].numpy().decode()], preprocessing.raw_feature_spec())
        x = np.frombuffer(parsed["strain"].numpy(), "<f4").reshape(3, 4096)
        expected = preprocessing.normalize_reference(x, stats, strain_params(config))
        np.testing.assert_allclose(norm["strain"].numpy(), expected.astype(np.float32), rtol=1e-4, atol=2e-5)


def test_audit_is_clean_and_catches_a_wrong_fold_and_foreign_statistics(kfold_chain, tmp_path):
    from transforms.audit import audit_dataset

    assert audit_dataset(str(kfold_chain["out"])) == []
    copy = tmp_path / "ds"
    shutil.copytree(kfold_chain["out"], copy, ignore=shutil.ignore_patterns("norm"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["stages"].pop("normalize")
    manifest["stages"]["split"]["salt"] = "another-salt"
    analyzed = manifest["stages"]["analyze"]["iterations"]["cv_00"]
    analyzed["read_by_fold"]["fold_00"] = 7  # the test fold reached the statistics
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = audit_dataset(str(copy))
    assert any("holds examples of targets of other folds" in p for p in problems), problems
    assert any("folds.json has salt" in p for p in problems), problems
    assert any(p.startswith("analyze: cv_00 read") for p in problems), problems


def test_report_shows_folds_iterations_and_fold_skew(kfold_chain, tmp_path):
    from beam_pipelines.dataset import fs
    from transforms.report.page import write_report

    copy = tmp_path / "ds"
    shutil.copytree(kfold_chain["out"], copy, ignore=shutil.ignore_patterns("norm", "tfrecords"))
    report = write_report(str(copy), fs)
    page = (copy / "report" / "index.html").read_text()
    assert "Cross-validation iterations" in page and "fold_04" in page and "positive targets" in page
    assert "splits" in [figure.name for figure in report.figures]
    assert report.skew and {r.reference for r in report.skew} == {"other folds"}
    assert {r.split for r in report.skew} == {fold_name(i) for i in range(K)}
