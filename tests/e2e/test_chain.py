"""Split, analyze (tf.Transform) and normalize on a small generated data set, checked against numpy oracles."""

from __future__ import annotations

import csv
import json

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.dataset import manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.stages import analyze, normalize, split
from beam_pipelines.stages.build import run_build
from transforms.config import DatasetConfig, load_config
from transforms.contract import encode_example, example_keys
from transforms.recipes.g2net import preprocessing, signal
from transforms.recipes.g2net.recipe import strain_params
from transforms.splitting import SPLITS, assign_split, bucket_of


def _read_tables(folder):
    rows = []
    for path in sorted(folder.glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _parse(paths, spec):
    dataset = tf.data.TFRecordDataset([str(p) for p in paths]).map(lambda r: tf.io.parse_single_example(r, spec))
    return list(dataset.as_numpy_iterator())


# ---- split assignment (pure) -------------------------------------------------------------------------------------


def test_bucket_is_sha256_and_stable():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"salt:star-1").digest()[:8], "big") % 10_000
    assert bucket_of("star-1", "salt") == expected


def test_assign_split_follows_fractions():
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    counts = {s: 0 for s in SPLITS}
    for i in range(20_000):
        counts[assign_split(f"target-{i}", fractions, "x")] += 1
    assert abs(counts["train"] / 20_000 - 0.8) < 0.015
    assert abs(counts["val"] / 20_000 - 0.1) < 0.01
    assert {assign_split("t", {"train": 1.0, "val": 0.0, "test": 0.0})} == {"train"}


def test_split_by_target_under_test_pipeline(tmp_path):
    from beam_pipelines.io.records import ShardRecord

    records = [
        ShardRecord(
            f"u{i}",
            encode_example(f"u{i}", f"star{i % 5}", i % 2, {}),
            {"uid": f"u{i}", "target_id": f"star{i % 5}", "label": i % 2, "snr": str(i)},
        )
        for i in range(20)
    ]
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    with TestPipeline(runner=FnApiRunner()) as p:
        counts = (
            p
            | beam.Create(records)
            | split.SplitByTarget(str(tmp_path), fractions, "s", 4, ["uid", "target_id", "label", "snr"])
        )
        summed = counts | beam.CombinePerKey(sum)
        expected_examples = {}
        for i in range(20):
            s = assign_split(f"star{i % 5}", fractions, "s")
            expected_examples[f"{s}/examples"] = expected_examples.get(f"{s}/examples", 0) + 1
        assert_that(
            summed | beam.Filter(lambda kv: kv[0].endswith("/examples")),
            equal_to(list(expected_examples.items())),
        )
    written = {s: _read_tables(tmp_path / s) for s in SPLITS}
    for s, rows_of_split in written.items():
        for row in rows_of_split:
            assert assign_split(row["target_id"], fractions, "s") == s
            assert row["snr"] == row["uid"][1:]


def test_cap_per_group_keeps_k_smallest_hashes():
    import hashlib

    records = [encode_example(f"u{i}", f"g{i % 3}", 0, {}) for i in range(30)]
    with TestPipeline(runner=FnApiRunner()) as p:
        kept = p | beam.Create(records) | analyze.CapPerGroup(4) | beam.Map(lambda r: example_keys(r)[0])
        expected = []
        for g in range(3):
            uids = [f"u{i}" for i in range(30) if i % 3 == g]
            expected += sorted(uids, key=lambda u: hashlib.sha256(u.encode()).digest())[:4]
        assert_that(kept, equal_to(expected))


# ---- the chain ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(g2net_raw_k3, tmp_path_factory):
    out = tmp_path_factory.mktemp("chain") / "ds"
    config = load_config(
        DatasetConfig,
        "run_configs/demo.yaml",
        [
            "build.examples_per_shard=16",
            "split.examples_per_shard=12",
            "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
        ],
    )
    run_build(config, str(g2net_raw_k3), str(out))
    split.run_split(config, str(out))
    analyze.run_analyze(config, str(out))
    result = normalize.run_normalize(config, str(out))
    return {"out": out, "config": config, "manifest": result}


def test_split_has_no_target_overlap_and_counts_match(chain):
    out, stages = chain["out"], chain["manifest"]["stages"]
    targets = {}
    for s in SPLITS:
        rows = _read_tables(out / "split" / s)
        assert stages["split"]["splits"][s]["examples"] == len(rows)
        assert stages["split"]["splits"][s]["targets"] == len({r["target_id"] for r in rows})
        for r in rows:
            targets.setdefault(r["target_id"], set()).add(s)
    assert all(len(v) == 1 for v in targets.values())
    assert sum(stages["split"]["splits"][s]["examples"] for s in SPLITS) == stages["build"]["written"]


def test_analyze_stats_equal_numpy_oracle(chain):
    out, config = chain["out"], chain["config"]
    params = strain_params(config)
    spec = preprocessing.raw_feature_spec()
    train = _parse(sorted((out / "split" / "train").glob("train_shard_*.tfrecord")), spec)
    x = np.stack([np.frombuffer(e["strain"], "<f4").reshape(3, 4096).astype(np.float64) for e in train])
    labels = np.array([e["label"] for e in train])
    window = ("tukey", params.tukey_alpha)
    avg_psd = np.mean([signal.periodogram_psd(xi, params.fs, window=window)[1] for xi in x[labels == 0]], axis=0)
    stats = dict(np.load(out / "stats" / "train_stats.npz"))
    assert stats["psd_examples"] == (labels == 0).sum()
    np.testing.assert_allclose(stats["avg_psd"], avg_psd, rtol=1e-9)
    assert 1e-50 < np.median(stats["avg_psd"][:, 40:1000]) < 1e-44  # physical scale, no underflow
    windowed = np.stack([signal.apply_tukey(signal.whiten(xi, avg_psd, params.fs, params.band), 0.1) for xi in x])
    np.testing.assert_allclose(stats["channel_mean"], windowed.mean(axis=(0, 2)), atol=1e-9)
    np.testing.assert_allclose(stats["channel_std"], windowed.std(axis=(0, 2)), rtol=1e-8)
    np.testing.assert_allclose(np.load(out / "stats" / "avg_psd.npz")["psd"], avg_psd, rtol=1e-9)
    assert (out / "stats" / "transform_fn").is_dir() and (out / "stats" / "transformed_metadata").is_dir()
    analyzed = json.loads((out / "manifest.json").read_text())["stages"]["analyze"]["analyzed_examples"]
    assert analyzed == {name: {"read": len(train), "handed": len(train), "analyzed": len(train)} for name in analyzed}
    assert sorted(analyzed) == ["moments", "psd"]


def test_normalized_shards_match_numpy_reference(chain):
    out, config = chain["out"], chain["config"]
    params = strain_params(config)
    stats = dict(np.load(out / "stats" / "train_stats.npz"))
    raw_spec = preprocessing.raw_feature_spec()
    norm_spec = {
        "strain": tf.io.FixedLenFeature([3, 4096], tf.float32),
        "uid": tf.io.FixedLenFeature([], tf.string),
        "target_id": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    for s in SPLITS:
        raw = {e["uid"]: e for e in _parse(sorted((out / "split" / s).glob(f"{s}_shard_*.tfrecord")), raw_spec)}
        norm_files = sorted((out / "norm" / s).glob(f"norm_{s}_shard_*.tfrecord"))
        norm = _parse(norm_files, norm_spec)
        assert len(norm) == len(raw) == chain["manifest"]["stages"]["split"]["splits"][s]["examples"]
        for e in norm:
            r = raw[e["uid"]]
            assert (e["target_id"], e["label"]) == (r["target_id"], r["label"])
            x = np.frombuffer(r["strain"], "<f4").reshape(3, 4096)
            expected = preprocessing.normalize_reference(x, stats, params)
            np.testing.assert_allclose(e["strain"], expected.astype(np.float32), rtol=1e-4, atol=2e-5)
        norm_rows = {r["uid"]: r for r in _read_tables(out / "norm" / s)}
        split_rows = {r["uid"]: r for r in _read_tables(out / "split" / s)}
        assert set(norm_rows) == set(split_rows) and len(norm_rows) == len(norm)
        for uid, row in norm_rows.items():  # recipe columns follow the example; the shard column is norm's own
            assert {k: v for k, v in row.items() if k != "shard"} == {
                k: v for k, v in split_rows[uid].items() if k != "shard"
            }
            assert row["shard"].startswith(f"norm_{s}_shard_")
    train = np.stack([e["strain"] for e in _parse(sorted((out / "norm" / "train").glob("*.tfrecord")), norm_spec)])
    np.testing.assert_allclose(train.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2)), 1.0, rtol=1e-4)


def test_manifest_records_every_stage(chain):
    data = json.loads((chain["out"] / "manifest.json").read_text())
    assert list(data["stages"]) == ["analyze", "build", "normalize", "split"]
    for stage in ("build", "split", "normalize"):
        st = data["stages"][stage]
        assert st["seen"] == st["written"] + st["rejected"]
    assert data["stages"]["analyze"]["finite"] is True


def test_stage_requires_its_input(tmp_path):
    config = load_config(DatasetConfig, "run_configs/g2net.yaml")
    with pytest.raises(StageError) as info:
        split.run_split(config, str(tmp_path))
    assert info.value.code == "missing_stage" and "'build'" in str(info.value)


def test_chain_passes_audit_with_source_groups(chain):
    from transforms import audit

    assert audit.audit_dataset(str(chain["out"]), group_column="source_id") == []
    rows = [r for s in SPLITS for r in _read_tables(chain["out"] / "norm" / s)]
    sizes = {}
    for r in rows:
        sizes[r["source_id"]] = sizes.get(r["source_id"], 0) + 1
    assert max(sizes.values()) == 3  # the leakage trap is really in the data


def test_killed_stage_publishes_nothing(g2net_raw, tmp_path, monkeypatch):
    """A stage that dies mid-run (here: the shard writer, which no per-element guard covers) leaves only its .tmp_
    folder: no output folder, no manifest entry, and no lock left behind."""
    from beam_pipelines.io import sink

    original = sink.name_parts

    def dying(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(sink, "name_parts", dying)
    config = load_config(DatasetConfig, "run_configs/g2net.yaml")
    out = tmp_path / "ds"
    with pytest.raises(Exception, match="worker killed"):
        run_build(config, str(g2net_raw), str(out))
    assert not (out / "tfrecords").exists()
    assert manifest.read_manifest(str(out))["stages"] == {}
    assert not (out / ".sigforge.lock").exists()
    monkeypatch.setattr(sink, "name_parts", original)
    run_build(config, str(g2net_raw), str(out))  # a rerun cleans the stale .tmp_ and succeeds
    assert (out / "tfrecords").is_dir() and not list(out.glob(".tmp_*"))


def test_read_shard_with_table_joins_rows_by_uid(chain):
    from beam_pipelines.io import readers

    folder = chain["out"] / "split" / "train"
    shard = sorted(folder.glob("train_shard_*.tfrecord"))[0]
    records = list(readers.read_shard_with_table(str(shard)))
    table = {r["uid"]: r for r in _read_tables(folder) if r["shard"] == shard.name}
    assert sorted(r.uid for r in records) == sorted(table)
    for r in records:
        assert r.row["snr"] == table[r.uid]["snr"] and "shard" not in r.row
        assert example_keys(r.example)[0] == r.uid


def test_every_stage_records_the_config_it_ran_with(chain, tmp_path):
    """Each stage entry has the hash of its config; a stage rerun with other --set values records how its config
    differs from the build's; a stage under another recipe's config is refused naming 'recipe'."""
    import shutil

    from beam_pipelines.commands import cli

    data = json.loads((chain["out"] / "manifest.json").read_text())
    built = manifest.config_sha256(data["config"])
    for stage in ("build", "split", "analyze", "normalize"):
        assert data["stages"][stage]["config_sha256"] == built
    assert all(data["stages"][s]["config_changes"] == {} for s in ("split", "analyze", "normalize"))

    out = tmp_path / "ds"
    shutil.copytree(chain["out"], out)
    rerun = ["split", "--config", "run_configs/demo.yaml", "--output", str(out), "--overwrite"]
    sets = ["--set", "build.examples_per_shard=16", "--set", "split.fractions={train: 0.6, val: 0.2, test: 0.2}"]
    assert cli.main([*rerun, *sets, "--set", "split.examples_per_shard=7"]) == 0
    data = json.loads((out / "manifest.json").read_text())
    assert data["stages"]["split"]["config_changes"] == {"split.examples_per_shard": 7}
    assert data["stages"]["split"]["config_sha256"] != built
    assert data["stages"]["build"]["config_sha256"] == manifest.config_sha256(data["config"]) == built

    before = (out / "manifest.json").read_text()
    tce = ["split", "--config", "run_configs/tce_kepler.yaml", "--output", str(out), "--overwrite"]
    with pytest.raises(StageError) as info:
        split.run_split(load_config(DatasetConfig, "run_configs/tce_kepler.yaml"), str(out), overwrite=True)
    assert info.value.code == "stage" and "'recipe'" in str(info.value)
    assert cli.main(tce) == 2
    assert (out / "manifest.json").read_text() == before  # refused before anything was replaced


@pytest.mark.parametrize("stage", ["analyze", "normalize"])
def test_a_stage_that_loses_a_record_publishes_nothing(chain, tmp_path, monkeypatch, stage):
    """Fault injection: the file reader drops one record (as Beam's splittable source did under several threads);
    the stage's read-what-was-written check stops it before it publishes."""
    import shutil

    from beam_pipelines.io import readers

    out = tmp_path / "ds"
    shutil.copytree(chain["out"], out)
    original = readers.read_records

    def lossy(path):
        records = list(original(path))
        return records[1:] if "_shard_0001-" in path else records  # the first record of every first shard

    monkeypatch.setattr(readers, "read_records", lossy)
    run = analyze.run_analyze if stage == "analyze" else normalize.run_normalize
    with pytest.raises(StageError) as info:
        run(chain["config"], str(out), overwrite=True)
    assert info.value.code == "count_mismatch"
    published = json.loads((out / "manifest.json").read_text())["stages"]
    assert stage not in published and "normalize" not in published
    assert not (out / ("stats" if stage == "analyze" else "norm")).exists()
