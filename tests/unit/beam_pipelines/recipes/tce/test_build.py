"""Light-curve recipe through Beam: build (with every kind of bad input), split, analyze (per-TCE cap), normalize,
both modes, the trainer's feature contract, the sample generator, and the real Kepler-90 quarter end to end."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.commands import cli
from beam_pipelines.stages import analyze, normalize, split
from beam_pipelines.stages.build import run_build
from tests.support.paths import KEPLER90, REPO
from transforms import audit
from transforms.config import ConfigError, DatasetConfig, load_config
from transforms.recipes.g2net.strain import MALFORMED_ROW
from transforms.recipes.tce import fits_io, preprocessing, schema, target, tce_table
from transforms.recipes.tce import sample as tce_sample
from transforms.recipes.tce.encoding import encode_tce_example
from transforms.splitting import SPLITS, assign_split

FRACTIONS = "split.fractions={train: 0.6, val: 0.2, test: 0.2}"


def _tables(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _records(paths) -> list[tf.train.Example]:
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset([str(p) for p in paths])]


def _bytes(example, name: str) -> bytes:
    return example.features.feature[name].bytes_list.value[0]


@pytest.fixture(scope="module")
def tce_raw(tmp_path_factory):
    """Four sample stars (planet, eclipsing binary, noise, planet + noise TCE) plus one of every bad input."""
    raw = tmp_path_factory.mktemp("tce_raw")
    summary = tce_sample.write_tce_sample(str(raw), n_targets=4, seed=3, quarters=2, days_per_quarter=20.0)
    with open(raw / "tces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = Path(summary["paths"][0])
    bad = raw / "bad"
    bad.mkdir()
    (bad / "kplr009000001-q01_llc.fits").write_bytes(first.read_bytes()[:20000])  # truncated
    (bad / "kplr009000002-q01_llc.fits").write_bytes(b"not a FITS file " * 400)  # corrupt
    time = 300.0 + np.arange(900) * tce_sample.CADENCE_DAYS
    flux = np.full(time.size, 1000.0) + np.random.default_rng(0).normal(0, 0.1, time.size)
    zeros = np.zeros(time.size, np.int32)
    # A star whose second file lacks PDCSAP_FLUX (that file is rejected, the star goes on).
    tce_sample.write_kepler_fits(str(bad / "kplr007000001-q01_llc.fits"), 7000001, time, flux, flux * 0 + 1, zeros)
    tce_sample.write_kepler_fits(
        str(bad / "kplr007000001-q02_llc.fits"),
        7000001,
        time + 20,
        flux,
        flux * 0 + 1,
        zeros,
        columns=("TIME", "SAP_FLUX", "SAP_QUALITY"),
    )
    # A light curve with no TCE, and a star whose only transit in the data falls in a gap (305.0-306.0 removed).
    tce_sample.write_kepler_fits(str(bad / "kplr007000002-q01_llc.fits"), 7000002, time, flux, flux * 0 + 1, zeros)
    keep = (time < 305.0) | (time > 306.0)
    tce_sample.write_kepler_fits(
        str(bad / "kplr007000003-q01_llc.fits"), 7000003, time[keep], flux[keep], flux[keep] * 0 + 1, zeros[keep]
    )
    extra = [
        {"target_id": "7000001", "tce_plnt_num": "1", "tce_period": "3.0", "tce_time0bk": "301.0",
         "tce_duration": "3.0", "label": "PC"},
        {"target_id": "7000003", "tce_plnt_num": "1", "tce_period": "50.0", "tce_time0bk": "305.5",
         "tce_duration": "4.0", "label": "PC"},
        {**rows[0], "tce_plnt_num": "8", "tce_period": "0"},
        {**rows[0], "tce_plnt_num": "9", "tce_period": "nan"},
        {"target_id": "8000000", "tce_plnt_num": "1", "tce_period": "3.0", "tce_time0bk": "301.0",
         "tce_duration": "3.0", "label": "PC"},
    ]  # fmt: skip
    tce_sample.write_tce_table(str(raw / "tces.csv"), rows + extra)
    with open(raw / "tces.csv", "a") as handle:
        handle.write("7000009,1,2.0\n")  # malformed: 3 fields
    return raw, rows


@pytest.fixture(scope="module")
def transits_chain(tce_raw, tmp_path_factory):
    raw, _ = tce_raw
    out = tmp_path_factory.mktemp("tce_chain") / "ds"
    config = load_config(DatasetConfig, str(REPO / "run_configs" / "tce_kepler.yaml"), [FRACTIONS])
    run_build(config, str(raw), str(out))
    split.run_split(config, str(out))
    analyze.run_analyze(config, str(out))
    result = normalize.run_normalize(config, str(out))
    return out, config, result


def test_build_rejects_each_bad_input_with_its_reason(transits_chain, tce_raw):
    out, _, result = transits_chain
    _, rows = tce_raw
    with open(out / "rejected" / "build.csv", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    by_what = {r["uid_or_path"]: r["reason"] for r in rejected}
    expected = {
        "kplr009000001-q01_llc.fits": schema.UNREADABLE_FITS,
        "kplr009000002-q01_llc.fits": schema.UNREADABLE_FITS,
        "kplr007000001-q02_llc.fits": schema.MISSING_COLUMNS,
        "kplr007000002-q01_llc.fits": schema.LIGHT_CURVE_WITHOUT_TCE,
    }
    for name, reason in expected.items():
        assert [v for k, v in by_what.items() if k.endswith(name)] == [reason], name
    assert by_what["7000003-1_t_305.5000"] == schema.TRANSIT_IN_GAP
    assert by_what["8000000-1"] == schema.TCE_WITHOUT_LIGHT_CURVE
    reasons = [r["reason"] for r in rejected]
    assert reasons.count(schema.BAD_PERIOD) == 2 and reasons.count(MALFORMED_ROW) == 1
    stage = result["stages"]["build"]
    assert stage["seen"] == stage["written"] + stage["rejected"] and stage["rejected"] == len(rejected)
    assert stage["files_matched"] == 8 + 6 and stage["tce_rows"] == len(rows) + 6
    # The star with one bad file still gives examples from its good file.
    raw_rows = _tables(out / "tfrecords")
    assert any(r["target_id"] == "7000001" for r in raw_rows)
    assert stage["written"] == len(raw_rows) == len({r["uid"] for r in raw_rows})


def test_raw_records_carry_the_contract_and_compact_windows(transits_chain):
    out, config, _ = transits_chain
    rows = {r["uid"]: r for r in _tables(out / "tfrecords")}
    records = _records(sorted((out / "tfrecords").glob("raw_shard_*.tfrecord")))
    assert len(records) == len(rows)
    kinds = {"transit": 0, "oot": 0}
    for example in records:
        uid = _bytes(example, "uid").decode()
        row = rows[uid]
        assert _bytes(example, "target_id").decode() == row["target_id"]
        assert _bytes(example, "tce_uid").decode() == row["tce_uid"] and uid.startswith(row["tce_uid"] + "_")
        assert example.features.feature["label"].int64_list.value[0] == int(row["label"])
        window = np.frombuffer(_bytes(example, "flux_window"), "<f4")
        assert window.shape == (config.tce.n_bins,) and np.isfinite(window).all()
        kinds[row["kind"]] += 1
        if row["kind"] == "oot":
            assert row["label"] == "0"
    assert kinds["oot"] > 0 and kinds["transit"] >= kinds["oot"]


def test_split_keeps_each_star_in_one_split_and_audit_is_clean(transits_chain):
    out, config, result = transits_chain
    seen = {}
    for s in SPLITS:
        for row in _tables(out / "split" / s):
            seen.setdefault(row["target_id"], set()).add(s)
            assert assign_split(row["target_id"], config.split.fractions, config.split.salt) == s
    # 4 sample stars + the star with one bad file; the star whose only transit is in a gap has no example.
    assert all(len(v) == 1 for v in seen.values()) and len(seen) == 5
    assert audit.audit_dataset(str(out)) == []


def test_statistics_use_at_most_four_examples_per_tce(transits_chain):
    out, config, result = transits_chain
    train = _records(sorted((out / "split" / "train").glob("train_shard_*.tfrecord")))
    per_tce: dict[str, list] = {}
    for example in train:
        uid = _bytes(example, "uid")
        per_tce.setdefault(_bytes(example, "tce_uid"), []).append((hashlib.sha256(uid).digest(), example))
    kept = [e for group in per_tce.values() for _, e in sorted(group, key=lambda p: p[0])[:4]]
    assert len(kept) < len(train)  # the cap really removes examples
    values = np.concatenate([np.frombuffer(_bytes(e, "flux_window"), "<f4").astype(np.float64) for e in kept])
    stats = dict(np.load(out / "stats" / "train_stats.npz"))
    assert int(stats["stats_examples"]) == len(kept) == result["stages"]["analyze"]["stats_examples"]
    np.testing.assert_allclose(stats["flux_window_mean"], values.mean(), rtol=1e-6)
    np.testing.assert_allclose(stats["flux_window_std"], values.std(), rtol=1e-6)


def test_normalized_windows_match_the_numpy_reference(transits_chain):
    out, config, result = transits_chain
    stats = dict(np.load(out / "stats" / "train_stats.npz"))
    spec = {
        "flux_window": tf.io.FixedLenFeature([100], tf.float32),
        "uid": tf.io.FixedLenFeature([], tf.string),
        "tce_uid": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    for s in SPLITS:
        raw = {_bytes(e, "uid"): e for e in _records(sorted((out / "split" / s).glob("*.tfrecord")))}
        files = [str(p) for p in sorted((out / "norm" / s).glob(f"norm_{s}_shard_*.tfrecord"))]
        norm = list(tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec)))
        assert len(norm) == len(raw) == result["stages"]["split"]["splits"][s]["examples"]
        for e in norm:
            r = raw[e["uid"].numpy()]
            assert e["tce_uid"].numpy() == _bytes(r, "tce_uid")
            view = {"flux_window": np.frombuffer(_bytes(r, "flux_window"), "<f4")}
            expected = preprocessing.tce_normalize_reference(view, stats)["flux_window"]
            np.testing.assert_allclose(e["flux_window"].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_trainer_configs_match_the_normalized_features(transits_chain, tmp_path):
    from model.config import load_trainer_config
    from model.data import read_feature_spec, resolve_input_spec

    out, _, _ = transits_chain
    spec = read_feature_spec(str(out))
    transits = load_trainer_config(str(REPO / "run_configs" / "train_tce_transits.yaml"))
    assert resolve_input_spec(spec, transits) == {"flux_window": (100,)}


def test_views_mode_chain_feeds_the_multibranch_trainer(tce_raw, tmp_path):
    from model.config import load_trainer_config
    from model.data import read_feature_spec, resolve_input_spec

    raw, rows = tce_raw
    out = tmp_path / "views"
    args = ["run", "--config", str(REPO / "run_configs" / "tce_kepler.yaml"), "--input", str(raw), "--output"]
    assert cli.main(args + [str(out), "--set", "tce.mode=views", "--set", FRACTIONS]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    built = _tables(out / "tfrecords")
    assert {r["uid"] for r in built} == {r["tce_uid"] for r in built}  # one example per TCE
    assert manifest["stages"]["build"]["written"] == len(built) >= len(rows) - 1
    assert all(int(r["n_transits"]) >= 1 for r in built)
    spec = read_feature_spec(str(out))
    assert resolve_input_spec(spec, load_trainer_config(str(REPO / "run_configs" / "train_tce.yaml"))) == {
        "global_view": (301,),
        "local_view": (31,),
    }
    assert spec["local_view_odd"].shape == [31] and spec["local_view_even"].shape == [31]
    assert audit.audit_dataset(str(out)) == []


def test_cap_per_group_keys_on_the_tce_uid():
    records = []
    for i in range(24):
        arrays = {"flux_window": np.zeros(3)}
        example = schema.TceExample(f"u{i}", "star", f"star-{i % 3}", 0, arrays, {})
        records.append(encode_tce_example(example))
    with TestPipeline(runner=FnApiRunner()) as p:
        kept = (
            p
            | beam.Create(records)
            | analyze.CapPerGroup(2, "tce_uid")
            | beam.Map(lambda r: tf.train.Example.FromString(r).features.feature["uid"].bytes_list.value[0].decode())
        )
        expected = []
        for g in range(3):
            uids = [f"u{i}" for i in range(24) if i % 3 == g]
            expected += sorted(uids, key=lambda u: hashlib.sha256(u.encode()).digest())[:2]
        assert_that(kept, equal_to(expected))  # 6, although all 24 share one target_id


def test_bad_column_mapping_is_refused_before_any_work(tce_raw, tmp_path):
    raw, _ = tce_raw
    config = load_config(DatasetConfig, str(REPO / "run_configs" / "tce_kepler.yaml"), ["tce.columns.period=P"])
    with pytest.raises(ConfigError) as info:
        run_build(config, str(raw), str(tmp_path / "ds"))
    assert info.value.code == "config" and "tce.columns.period" in str(info.value)
    assert not (tmp_path / "ds").exists()


def test_make_sample_tce_is_deterministic(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert cli.main(["make-sample", "tce", str(tmp_path / name), "--n", "4", "--seed", str(seed)]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 4 * 2 + 1
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / "tces.csv").read_bytes() != (tmp_path / "c" / "tces.csv").read_bytes()
    with open(tmp_path / "a" / "tces.csv", newline="") as handle:
        kinds = [r["kind"] for r in csv.DictReader(handle)]
    assert {"planet", "eb", "noise"} <= set(kinds)


def test_sample_transits_have_their_injected_depth_and_duration(tmp_path):
    summary = tce_sample.write_tce_sample(str(tmp_path), n_targets=8, seed=1, kinds=["planet"])
    cfg = load_config(DatasetConfig, str(REPO / "run_configs" / "tce_kepler.yaml")).tce
    with open(tmp_path / "tces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        depth, duration = float(row["transit_depth"]), float(row["tce_duration"])
        assert 100 <= depth <= 10000 and 1 <= duration <= 15
        paths = [p for p in summary["paths"] if f"kplr{int(row['target_id']):09d}" in p]
        curves = [fits_io.read_light_curve(Path(p).read_bytes(), p, cfg) for p in paths]
        tces = [tce_table.parse_tce(r, cfg) for r in rows if r["target_id"] == row["target_id"]]
        examples, _ = target.process_target(row["target_id"], curves, tces, cfg)
        uid = f"{row['target_id']}-{row['tce_plnt_num']}"
        windows = [e.arrays["flux_window"] for e in examples if e.tce_uid == uid and e.row["kind"] == "transit"]
        if depth < 1000 or not windows:
            continue  # shallow transits are below the per-window noise
        stacked = np.median(np.stack(windows), axis=0)
        assert -np.median(stacked[46:54]) == pytest.approx(depth * 1e-6, rel=0.2), uid
        checked += 1
    assert checked >= 3


def test_kepler90_runs_end_to_end(tmp_path):
    if not KEPLER90.is_dir():
        pytest.skip(f"real Kepler-90 fixture {KEPLER90} not present")
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(next(KEPLER90.glob("*.fits")), raw)
    shutil.copy(next(KEPLER90.glob("*.csv")), raw / "tces.csv")
    out = tmp_path / "ds"
    args = ["run", "--config", str(REPO / "run_configs" / "tce_kepler.yaml"), "--input", str(raw)]
    assert cli.main(args + ["--output", str(out)]) == 0
    assert cli.main(["audit", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    build = manifest["stages"]["build"]
    assert (build["written"], build["rejected_by_reason"]) == (12, {schema.NO_TRANSIT_OBSERVED: 4})
    splits = {s: v["examples"] for s, v in manifest["stages"]["split"]["splits"].items()}
    assert sorted(splits.values()) == [0, 0, 12]  # the whole star lands in one split
    for s in splits:  # every normalized table, an empty split's too, has its split table's columns
        headers = {p.read_text().splitlines()[0] for p in (out / "split" / s).glob("data_tbl_*.csv")}
        assert {p.read_text().splitlines()[0] for p in (out / "norm" / s).glob("data_tbl_*.csv")} == headers, s
        assert len(headers) == 1 and "tce_uid" in next(iter(headers))
    (where,) = [s for s, n in splits.items() if n]
    rows = _tables(out / "norm" / where)
    transits = sorted((r["tce_uid"], float(r["midtime"])) for r in rows if r["kind"] == "transit")
    # Catalogue ephemerides epoch + n * period (DR25, BKJD): g (-2) n=1, b (-6) n=31..33, c (-7) n=25, 26.
    assert [t[0] for t in transits] == ["11442793-2"] + ["11442793-6"] * 3 + ["11442793-7"] * 2
    expected = [147.099 + 210.6013843] + [137.675 + n * 7.00821787 for n in (31, 32, 33)]
    expected += [139.521 + n * 8.71980135 for n in (25, 26)]
    assert [t[1] for t in transits] == pytest.approx(expected, abs=1e-6)
    assert {r["label"] for r in rows if r["kind"] == "oot"} == {"0"}
    assert all(np.isfinite(v).all() for v in np.load(out / "stats" / "train_stats.npz").values())
