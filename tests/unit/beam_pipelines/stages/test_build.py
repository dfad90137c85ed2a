"""Build stage: pure join/validation helpers, DoFns under TestPipeline, and an end-to-end run with bad inputs."""

from __future__ import annotations

import csv
import json
import shutil

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.inputs import SEEN, ParseCsvFn
from beam_pipelines.recipes.g2net import build as build_g2net
from beam_pipelines.stages.build import run_build
from transforms.config import ConfigError, DatasetConfig, load_config
from transforms.contract import decode_array, decode_example
from transforms.recipes.g2net import signal
from transforms.recipes.g2net import strain as strain_lib
from transforms.recipes.g2net.config import G2NetConfig


def _npy_bytes(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ---- numeric / pure helpers --------------------------------------------------------------------------------------


def test_preprocess_npy_is_the_scipy_bandpass_in_float32():
    rng = np.random.default_rng(0)
    raw = rng.normal(scale=1e-21, size=(3, 4096))
    out = strain_lib.preprocess_npy(_npy_bytes(raw))
    assert out.dtype == np.float32 and out.shape == (3, 4096)
    np.testing.assert_allclose(out, signal.bandpass(raw).astype(np.float32), rtol=0, atol=0)
    assert 1e-23 < np.std(out) < 1e-20  # still physical units, no underflow


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"not a numpy file at all", strain_lib.UNREADABLE_NPY),
        (_npy_bytes(np.zeros((3, 4096)))[:100], strain_lib.UNREADABLE_NPY),
        (_npy_bytes(np.zeros((2, 4096))), strain_lib.WRONG_SHAPE),
        (_npy_bytes(np.array([["a"] * 4096] * 3)), strain_lib.UNSUPPORTED_DTYPE),
        (_npy_bytes(np.where(np.arange(3 * 4096).reshape(3, 4096) == 7, np.nan, 1e-22)), strain_lib.NON_FINITE),
        (_npy_bytes(np.full((3, 4096), np.inf)), strain_lib.NON_FINITE),
    ],
)
def test_preprocess_npy_rejects_bad_samples(payload, reason):
    with pytest.raises(strain_lib.RejectedInput) as info:
        strain_lib.preprocess_npy(payload)
    assert info.value.reason == reason


@pytest.mark.parametrize("text, expected", [("1", 1), ("0", 0), ("1.0", 1), (" 0 ", 0)])
def test_parse_label_accepts_integers(text, expected):
    assert strain_lib.parse_label(text) == expected


@pytest.mark.parametrize("text", ["abc", "0.5", "", "nan"])
def test_parse_label_rejects_non_integers(text):
    with pytest.raises(strain_lib.RejectedInput, match="not an integer") as info:
        strain_lib.parse_label(text)
    assert info.value.reason == strain_lib.BAD_LABEL


def test_resolve_join_reasons():
    cfg = G2NetConfig()
    row = {"id": "a", "target": "1"}
    ok = build_g2net.resolve_join("a", ["/x/a.npy"], [row], cfg)
    assert (ok.uid, ok.path, ok.label, ok.target_id) == ("a", "/x/a.npy", 1, "a")
    cases = [
        ([], [row], strain_lib.LABEL_WITHOUT_FILE),
        (["/x/a.npy"], [], strain_lib.FILE_WITHOUT_LABEL),
        (["/x/a.npy", "/y/a.npy"], [row], strain_lib.DUPLICATE_ID),
        (["/x/a.npy"], [row, row], strain_lib.DUPLICATE_ID),
        (["/x/a.npy"], [{"id": "a", "target": "yes"}], strain_lib.BAD_LABEL),
    ]
    for paths, rows, reason in cases:
        with pytest.raises(strain_lib.RejectedInput) as info:
            build_g2net.resolve_join("a", paths, rows, cfg)
        assert info.value.reason == reason, (paths, rows)


# ---- DoFns under TestPipeline ------------------------------------------------------------------------------------


def test_parse_csv_dofn_splits_rows_and_rejects():
    header = ("id", "target", "source_id")
    with TestPipeline(runner=FnApiRunner()) as p:
        parsed = (
            p
            | beam.Create(["a,1,s1", "b,0,b", "broken,row"])
            | beam.ParDo(ParseCsvFn("build", header, "id", "labels")).with_outputs(
                build_g2net.REJECTED, SEEN, main="rows"
            )
        )
        assert_that(
            parsed.rows,
            equal_to(
                [
                    ("a", {"id": "a", "target": "1", "source_id": "s1"}),
                    ("b", {"id": "b", "target": "0", "source_id": "b"}),
                ]
            ),
            label="Rows",
        )
        assert_that(
            parsed[build_g2net.REJECTED] | beam.Map(lambda r: (r.reason, r.uid_or_path)),
            equal_to([(strain_lib.MALFORMED_ROW, "labels:broken,row")]),
            label="Rejected",
        )


def test_resolve_join_dofn_under_test_pipeline():
    cfg = G2NetConfig(group_column="source_id")
    grouped = [
        (
            "a",
            {
                "files": [("/r/a.npy", True)],
                "labels": [{"id": "a", "target": "1", "source_id": "s"}],
                "truth": [{"snr": "9"}],
            },
        ),
        ("b", {"files": [], "labels": [{"id": "b", "target": "0", "source_id": "b"}], "truth": []}),
        ("t", {"files": [], "labels": [], "truth": [{"snr": "1"}]}),
    ]
    with TestPipeline(runner=FnApiRunner()) as p:
        out = (
            p
            | beam.Create(grouped)
            | beam.ParDo(build_g2net._ResolveJoinFn(cfg)).with_outputs(build_g2net.REJECTED, SEEN, main="candidates")
        )
        assert_that(
            out.candidates | beam.Map(lambda c: (c.uid, c.target_id, c.label, c.row["snr"])),
            equal_to([("a", "s", 1, "9")]),
            label="Candidates",
        )
        assert_that(
            out[build_g2net.REJECTED] | beam.Map(lambda r: (r.uid_or_path, r.reason)),
            equal_to([("b", strain_lib.LABEL_WITHOUT_FILE)]),
            label="Rejected",
        )
        assert_that(out[SEEN], equal_to(["a", "b"]), label="Seen")


# ---- end to end --------------------------------------------------------------------------------------------------


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _corrupt_copy(raw, dest):
    """A copy of the clean sample plus one input for every kind of bad input the build must reject."""
    shutil.copytree(raw, dest)
    labels = _read_csv(dest / "training_labels.csv")
    good = np.load(next((dest / "train").rglob("*.npy")))

    def put(sample_id, payload):
        path = dest / "train" / sample_id[0] / sample_id[1] / sample_id[2] / f"{sample_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        return path

    extra_rows = []
    put("trunc00001", _npy_bytes(good)[:200])
    put("text000002", b"hello, I am not a numpy file")
    put("shape00003", _npy_bytes(good[:2]))
    put("nan0000004", _npy_bytes(np.where(np.arange(good.size).reshape(good.shape) == 5, np.nan, good)))
    put("nolabel005", _npy_bytes(good))
    put("badlabel06", _npy_bytes(good))
    put("dup0000007", _npy_bytes(good))
    alt = dest / "train" / "x" / "dup0000007.npy"
    alt.parent.mkdir(parents=True, exist_ok=True)
    alt.write_bytes(_npy_bytes(good))
    for sid in ("trunc00001", "text000002", "shape00003", "nan0000004", "dup0000007"):
        extra_rows.append(f"{sid},1,{sid}")
    extra_rows += ["nofile0008,0,nofile0008", "badlabel06,maybe,badlabel06", "too,many,fields,here"]
    with open(dest / "training_labels.csv", "a") as handle:
        handle.write("\n".join(extra_rows) + "\n")
    return len(labels)


@pytest.fixture(scope="module")
def built(g2net_raw, tmp_path_factory):
    base = tmp_path_factory.mktemp("build")
    raw = base / "raw"
    n_clean = _corrupt_copy(g2net_raw, raw)
    out = base / "ds"
    config = load_config(
        DatasetConfig,
        "run_configs/demo.yaml",
        ["build.examples_per_shard=20"],
    )
    result = run_build(config, str(raw), str(out))
    return {"out": out, "raw": raw, "n_clean": n_clean, "manifest": result, "config": config}


EXPECTED_REJECTS = {
    strain_lib.UNREADABLE_NPY: 1,
    strain_lib.TRUNCATED_NPY: 1,
    strain_lib.WRONG_SHAPE: 1,
    strain_lib.NON_FINITE: 1,
    strain_lib.FILE_WITHOUT_LABEL: 1,
    strain_lib.LABEL_WITHOUT_FILE: 1,
    strain_lib.DUPLICATE_ID: 1,
    strain_lib.BAD_LABEL: 1,
    strain_lib.MALFORMED_ROW: 1,
}


def test_build_accounts_for_every_input(built):
    stage = built["manifest"]["stages"]["build"]
    assert stage["written"] == built["n_clean"]
    assert stage["rejected_by_reason"] == EXPECTED_REJECTS
    assert stage["rejected"] == sum(EXPECTED_REJECTS.values())
    # seen is counted independently (one per sample id + malformed rows), so this equality can fail
    assert stage["seen"] == stage["written"] + stage["rejected"]
    assert stage["files_matched"] == built["n_clean"] + 8
    rejected = _read_csv(built["out"] / "rejected" / "build.csv")
    assert sorted(r["reason"] for r in rejected) == sorted(
        reason for reason, count in EXPECTED_REJECTS.items() for _ in range(count)
    )
    assert all(r["stage"] == "build" and r["detail"] for r in rejected)
    assert any("dup0000007.npy" in r["uid_or_path"] and ";" in r["uid_or_path"] for r in rejected)


def test_build_writes_sharded_records_that_tf_data_reads(built):
    out = built["out"]
    shards = sorted((out / "tfrecords").glob("raw_shard_*.tfrecord"))
    tables = sorted((out / "tfrecords").glob("data_tbl_*.csv"))
    n_shards = len(shards)
    assert n_shards >= -(-built["n_clean"] // 20)  # no shard above examples_per_shard=20
    assert [s.name for s in shards] == [f"raw_shard_{i:04d}-{n_shards:04d}.tfrecord" for i in range(1, n_shards + 1)]
    assert [t.name for t in tables] == [f"data_tbl_{i:04d}-{n_shards:04d}.csv" for i in range(1, n_shards + 1)]
    sizes = [sum(1 for _ in tf.data.TFRecordDataset(str(s))) for s in shards]
    assert max(sizes) <= 20 and sum(sizes) == built["n_clean"]
    assert not list((out / "tfrecords").glob("_part-*"))
    spec = {
        "uid": tf.io.FixedLenFeature([], tf.string),
        "target_id": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "strain": tf.io.FixedLenFeature([], tf.string),
    }
    dataset = tf.data.TFRecordDataset([str(s) for s in shards]).map(lambda r: tf.io.parse_single_example(r, spec))
    parsed = list(dataset.as_numpy_iterator())
    assert len(parsed) == built["n_clean"]
    uids = [p["uid"].decode() for p in parsed]
    assert len(set(uids)) == len(uids)
    labels = {r["id"]: r for r in _read_csv(built["raw"] / "training_labels.csv")}
    for p in parsed:
        row = labels[p["uid"].decode()]
        assert p["label"] == int(row["target"])
        assert p["target_id"].decode() == row["source_id"]  # demo.yaml groups by source_id
    # the strain is the bandpassed raw file, stored as float32 bytes
    first = parsed[0]
    sid = first["uid"].decode()
    raw = np.load(next((built["raw"] / "train").rglob(f"{sid}.npy")))
    stored = np.frombuffer(first["strain"], dtype="<f4").reshape(3, 4096)
    np.testing.assert_array_equal(stored, signal.bandpass(raw).astype(np.float32))


def test_build_data_tables_list_every_example_with_truth(built):
    out = built["out"]
    rows = [r for t in sorted((out / "tfrecords").glob("data_tbl_*.csv")) for r in _read_csv(t)]
    assert len(rows) == built["n_clean"]
    assert list(rows[0])[:4] == ["uid", "target_id", "label", "shard"]
    assert {"source_id", "snr", "m1", "m2"} <= set(rows[0])
    for r in rows:
        shard = out / "tfrecords" / r["shard"]
        assert shard.exists()
        uids_in_shard = [
            decode_example(x.numpy()).features.feature["uid"].bytes_list.value[0].decode()
            for x in tf.data.TFRecordDataset(str(shard))
        ]
        assert r["uid"] in uids_in_shard
        assert (float(r["snr"]) > 0) == (r["label"] == "1")


def test_build_manifest_and_atomic_publish(built):
    out = built["out"]
    data = json.loads((out / "manifest.json").read_text())
    assert data["config"]["g2net"]["group_column"] == "source_id" and "tce" not in data["config"]
    assert data["versions"]["apache-beam"] and "completed_at" in data["stages"]["build"]
    assert not list(out.glob(".tmp_*"))


def test_rerun_without_overwrite_is_refused_before_work(built):
    with pytest.raises(StageError) as info:
        run_build(built["config"], str(built["raw"]), str(built["out"]))
    assert info.value.code == "output_exists"


def test_bad_group_column_is_a_config_error(g2net_raw, tmp_path):
    config = load_config(DatasetConfig, "run_configs/g2net.yaml", ["g2net.group_column=star"])
    with pytest.raises(ConfigError) as info:
        run_build(config, str(g2net_raw), str(tmp_path / "ds"))
    assert info.value.code == "config" and "g2net.group_column" in str(info.value)
    assert not (tmp_path / "ds").exists()


def test_decode_array_roundtrip():
    from transforms.contract import encode_example

    array = np.arange(12, dtype=np.float32).reshape(3, 4) * 1e-22
    example = decode_example(encode_example("u", "t", 1, {"strain": array}))
    np.testing.assert_array_equal(decode_array(example, "strain", (3, 4)), array)


def test_write_shards_rolls_parts_and_names_them_in_sequence(tmp_path):
    from beam_pipelines.io.records import ShardRecord
    from beam_pipelines.io.sink import WriteShards

    records = [ShardRecord(f"u{i:02d}", encode_bytes(i), {"target_id": "t", "label": i % 2}) for i in range(23)]
    with TestPipeline(runner=FnApiRunner()) as p:
        written = p | beam.Create(records) | WriteShards(str(tmp_path), "x", 5, ["snr"])
        assert_that(written | beam.Map(lambda d: d["examples"]) | beam.CombineGlobally(sum), equal_to([23]))
    shards = sorted(tmp_path.glob("x_shard_*.tfrecord"))
    total = len(shards)
    assert total >= 5 and [s.name for s in shards] == [
        f"x_shard_{i:04d}-{total:04d}.tfrecord" for i in range(1, total + 1)
    ]
    uids = []
    for shard in shards:
        table = _read_csv(tmp_path / shard.name.replace("x_shard_", "data_tbl_").replace(".tfrecord", ".csv"))
        stored = [
            decode_example(r.numpy()).features.feature["uid"].bytes_list.value[0].decode()
            for r in tf.data.TFRecordDataset(str(shard))
        ]
        assert [row["uid"] for row in table] == stored and len(stored) <= 5
        assert all(row["shard"] == shard.name for row in table)
        uids += stored
    assert sorted(uids) == [r.uid for r in records]
    assert not list(tmp_path.glob("_part-*"))


def test_write_shards_of_nothing_writes_one_empty_shard(tmp_path):
    from beam_pipelines.io.records import ShardRecord
    from beam_pipelines.io.sink import WriteShards

    with TestPipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create([]).with_output_types(ShardRecord) | WriteShards(str(tmp_path), "x", 5)
    assert [f.name for f in sorted(tmp_path.iterdir())] == ["data_tbl_0001-0001.csv", "x_shard_0001-0001.tfrecord"]
    assert (tmp_path / "x_shard_0001-0001.tfrecord").stat().st_size == 0


def test_write_shards_per_key_writes_each_key_as_its_own_writer(tmp_path):
    """Keys a and b each get their own rolled, numbered shards in their own folder; key c, with no record, one
    empty shard; the output pairs each shard with its key."""
    from beam_pipelines.io.records import ShardRecord
    from beam_pipelines.io.sink import WriteShards

    records = [ShardRecord(f"u{i:02d}", encode_bytes(i), {"target_id": "t", "label": i % 2}) for i in range(23)]
    keyed = [("a" if i % 3 else "b", r) for i, r in enumerate(records)]
    destinations = {key: (str(tmp_path / key), f"x{key}") for key in "abc"}
    with TestPipeline(runner=FnApiRunner()) as p:
        written = p | beam.Create(keyed) | WriteShards.per_key(destinations, 5)
        counts = written | beam.MapTuple(lambda key, d: (key, d["examples"])) | beam.CombinePerKey(sum)
        assert_that(counts, equal_to([("a", 15), ("b", 8), ("c", 0)]))
    for key, expected in (("a", [r.uid for k, r in keyed if k == "a"]), ("b", [r.uid for k, r in keyed if k == "b"])):
        shards = sorted((tmp_path / key).glob(f"x{key}_shard_*.tfrecord"))
        assert len(shards) >= 2 and shards[-1].name.endswith(f"-{len(shards):04d}.tfrecord")
        uids = [
            decode_example(r.numpy()).features.feature["uid"].bytes_list.value[0].decode()
            for shard in shards
            for r in tf.data.TFRecordDataset(str(shard))
        ]
        assert sorted(uids) == expected
        assert not list((tmp_path / key).glob("_part-*"))
    assert sorted(f.name for f in (tmp_path / "c").iterdir()) == [
        "data_tbl_0001-0001.csv",
        "xc_shard_0001-0001.tfrecord",
    ]


def encode_bytes(i):
    from transforms.contract import encode_example

    return encode_example(f"u{i:02d}", "t", i % 2, {})


def test_batched_preprocess_equals_per_sample_and_keeps_rejects_in_place():
    rng = np.random.default_rng(3)
    good = [rng.normal(scale=1e-21, size=(3, 4096)) for _ in range(3)]
    payloads = [_npy_bytes(good[0]), b"junk", _npy_bytes(good[1]), _npy_bytes(good[2][:2]), _npy_bytes(good[2])]
    results = strain_lib.preprocess_npy_batch(payloads)
    assert [type(r).__name__ for r in results] == ["ndarray", "RejectedInput", "ndarray", "RejectedInput", "ndarray"]
    assert [results[1].reason, results[3].reason] == [strain_lib.UNREADABLE_NPY, strain_lib.WRONG_SHAPE]
    for got, raw in zip([results[0], results[2], results[4]], good, strict=True):
        np.testing.assert_array_equal(got, signal.bandpass(raw).astype(np.float32))


def test_distinct_per_channel_counts_as_np_unique():
    rng = np.random.default_rng(5)
    strain = rng.normal(size=(3, 4096))
    strain[1] = np.round(strain[1] * 3) / 3  # quantized: few distinct values
    strain[2, :100] = 0.0
    strain[2, 100:200] = -0.0  # np.unique counts 0.0 and -0.0 as one value
    expected = [np.unique(row).size for row in strain]
    assert strain_lib.distinct_per_channel(strain).tolist() == expected


@pytest.mark.parametrize("n, parts", [(0, 2), (1, 2), (5, 2), (7, 3), (64, 2), (3, 8)])
def test_parallel_blocks_cover_rows_in_order(n, parts):
    from transforms import parallel

    got = parallel.blocks(n, parts)
    assert [i for block in got for i in range(n)[block]] == list(range(n))
    assert all(block.stop > block.start for block in got) and len(got) == min(parts, n)
    sizes = [block.stop - block.start for block in got]
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_parallel_rows_in_threads_equals_one_call_and_raises():
    from transforms import parallel

    rows = np.random.default_rng(2).normal(size=(7, 4096)) * 1e-21
    one = signal.bandpass(rows)
    for threads in (1, 2, 3, 8):
        np.testing.assert_array_equal(parallel.rows_in_threads(signal.bandpass, rows, threads, np.concatenate), one)

    def fails(block):
        raise ValueError("bad block")

    with pytest.raises(ValueError, match="bad block"):
        parallel.map_blocks(fails, 10, 2)


def test_build_output_does_not_depend_on_numeric_threads(built, tmp_path):
    """The batch's bandpass runs in row blocks on the shared pool: 1 thread and 3 threads write byte-identical
    shards, data tables and rejections (corrupt inputs included)."""
    outputs = {}
    for threads in (1, 3):
        config = load_config(
            DatasetConfig, "run_configs/demo.yaml", ["build.examples_per_shard=20", f"build.numeric_threads={threads}"]
        )
        out = tmp_path / f"t{threads}"
        run_build(config, str(built["raw"]), str(out))
        outputs[threads] = {
            path.relative_to(out).as_posix(): path.read_bytes()
            for path in sorted(out.rglob("*"))
            if path.is_file() and path.name != "manifest.json"
        }
    assert outputs[1] == outputs[3]
    assert any(name.endswith(".tfrecord") for name in outputs[1]) and "rejected/build.csv" in outputs[1]
