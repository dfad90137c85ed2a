"""Per-star batches and the cheaper shard tables: the same bytes as the one-element-per-example and DictReader /
DictWriter code they replaced (``tests/oracles/shard_tables.py``)."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.io import progress
from beam_pipelines.io.counting import Several, Tally, weight
from beam_pipelines.io.records import ShardBatch, ShardRecord
from beam_pipelines.io.rejects import COLUMNS
from beam_pipelines.io.sink import WriteShards
from beam_pipelines.io.tables import format_row, format_table, shard_table, sorted_part_table
from tests.oracles import shard_tables
from transforms.contract import ExampleEncoder, Rejection, encode_example, example_keys
from transforms.recipes.tce import schema
from transforms.recipes.tce.encoding import encode_examples, encode_tce_example
from transforms.tfrecord import iter_records

TRICKY = ["plain", "", None, 'quo"te', "com,ma", "new\nline", "cr\rlf\r\n", " space ", 0, 1.5, -2, True, "ünï"]


def _tricky_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {"uid": f"u{int(rng.integers(0, n // 2 + 1)):03d}", "target_id": TRICKY[i % len(TRICKY)]}
        row.update({c: TRICKY[int(rng.integers(len(TRICKY)))] for c in ("label", "a", "b") if rng.random() < 0.8})
        row["extra_not_a_column"] = "x"
        rows.append(row)
    return rows


def test_format_table_and_format_row_are_the_dict_writer_text():
    columns = ["uid", "target_id", "label", "shard", "a", "b"]
    rows = _tricky_rows(60, 0)
    assert format_table(rows, columns) == shard_tables.format_table(rows, columns)
    assert format_table([], columns) == shard_tables.format_table([], columns)
    for values in (
        ("u", "build", "reason", "detail, with comma"),
        ("u", "build", "r", 'a "quoted"\nline'),
        ("", "", "", ""),
    ):
        rejection = Rejection(*values)
        old = shard_tables.format_table([rejection._asdict()], COLUMNS).split("\n", 1)[1].rstrip("\n")
        assert format_row(rejection._asdict(), COLUMNS) == old


def test_sorted_part_table_is_the_dict_reader_text():
    part_columns = ["uid", "target_id", "label", "a", "b"]
    rows = _tricky_rows(80, 1)  # duplicate uids: the sort must be stable
    part_csv = format_table(rows, part_columns)
    columns = ["uid", "target_id", "label", "shard", "a", "b", "not_in_part"]
    text = sorted_part_table(part_csv, columns, "x_shard_0002-0007.tfrecord")
    assert text == shard_tables.sorted_table(part_csv, columns, "x_shard_0002-0007.tfrecord")
    # hand-made oddities: a short row, a long row, a blank line
    odd = "uid,target_id,label,a,b\nu2,t,1\nu1,t,0,x,y,surplus\n\nu0,t,1,,\n"
    assert sorted_part_table(odd, columns, "s") == shard_tables.sorted_table(odd, columns, "s")


def test_write_shards_tables_are_the_text_of_the_parse_and_rewrite_finalize(tmp_path):
    rows = _tricky_rows(30, 2)
    uids = [row["uid"] for row in rows]
    records = [ShardRecord(uid, r, row) for uid, r, row in zip(uids, _records(uids), rows, strict=True)]
    with TestPipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create(records, reshuffle=False) | WriteShards(str(tmp_path), "x", 100, ["a", "b"])
    columns = ["uid", "target_id", "label", "shard", "a", "b"]
    part = shard_tables.format_table([{**row, "uid": row["uid"]} for row in rows], [c for c in columns if c != "shard"])
    expected = shard_tables.sorted_table(part, columns, "x_shard_0001-0001.tfrecord")
    assert (tmp_path / "data_tbl_0001-0001.csv").read_bytes().decode("utf-8") == expected


def test_shard_table_parses_the_part_when_the_token_cannot_be_replaced():
    columns = ["uid", "target_id", "label", "shard", "a"]
    rows = [{"uid": "b", "a": "sigforge-shard-t"}, {"uid": "a", "a": "1"}]
    part_csv = format_table(rows, columns, shard="sigforge-shard-t")  # the token also in a value: parsed
    part = {"examples": 2, "shard_token": "sigforge-shard-t"}
    assert shard_table(part_csv, part, columns, "s") == sorted_part_table(part_csv, columns, "s")
    assert "a,,,s,1\n" in shard_table(part_csv, part, columns, "s")
    plain = format_table(rows[1:], columns, shard="sigforge-shard-t")
    one = {"examples": 1, "shard_token": "sigforge-shard-t"}
    assert shard_table(plain, one, columns, "s") == plain.replace("sigforge-shard-t", "s")
    assert shard_table(plain, one, columns, "s,1") == sorted_part_table(plain, columns, "s,1")  # quoted in CSV
    assert '"s,1"' in shard_table(plain, one, columns, "s,1")


def _records(uids) -> list[bytes]:
    return [encode_example(uid, "t", i % 2, {"f": np.full(3, i, np.float32)}) for i, uid in enumerate(uids)]


def _example(uid: str, arrays: dict, label: int = 1) -> schema.TceExample:
    return schema.TceExample(uid, "42", "42-1", label, arrays, {"kind": "transit"})


def _one_at_a_time(examples):
    encoded, drops = [], []
    for example in examples:
        try:
            encoded.append((example, encode_tce_example(example)))
        except Exception as error:  # RejectedInput
            drops.append(schema.Drop(example.uid, error.reason, error.detail))
    return encoded, drops


@pytest.mark.parametrize("kind", ["windows", "views", "mixed_lengths", "mixed_names", "empty"])
def test_encode_examples_equals_encoding_one_at_a_time(kind):
    rng = np.random.default_rng(3)
    if kind == "windows":
        examples = [_example(f"u{i}", {"flux_window": rng.normal(size=100) * 1e-3}) for i in range(40)]
        examples[3].arrays["flux_window"][7] = 1e300  # finite in float64, not in float32
        examples[9].arrays["flux_window"][:3] = np.nan
        examples[11].arrays["flux_window"][0] = -np.inf
    elif kind == "views":
        names = ("global_view", "local_view", "local_view_odd", "local_view_even")
        examples = [
            _example(f"v{i}", {n: rng.normal(size=31 if n != "global_view" else 301) for n in names}) for i in range(9)
        ]
        examples[2].arrays["local_view_odd"][4] = np.nan
        examples[5].arrays["local_view"][4] = 1e39
        examples[5].arrays["local_view_even"][4] = np.inf
    elif kind == "mixed_lengths":
        examples = [_example(f"w{i}", {"flux_window": rng.normal(size=10 + i % 2)}) for i in range(6)]
    elif kind == "mixed_names":
        examples = [
            _example("a", {"x": np.ones(3), "y": np.ones(3)}),
            _example("b", {"y": np.ones(3), "x": np.ones(3)}),
        ]
    else:
        examples = []
    assert encode_examples(examples) == _one_at_a_time(examples)
    if kind in ("windows", "views"):
        assert len(encode_examples(examples)[1]) == (3 if kind == "windows" else 2)


def test_example_encoder_gives_the_bytes_of_encode_example():
    rng = np.random.default_rng(5)
    encoder = ExampleEncoder(["b_view", "a_view"], ["tce_uid", "note"])
    for i in range(300):
        arrays = {"a_view": rng.normal(size=int(rng.integers(0, 400))), "b_view": rng.normal(size=3).astype(np.float32)}
        strings = {"note": "ü" * (i % 5), "tce_uid": f"{i}-{'x' * (i % 150)}"}
        label = int(rng.integers(-(2**63), 2**63)) if i % 4 == 0 else i % 2
        uid, target = "u" * (i % 130) + str(i), "" if i % 7 == 0 else f"t{i}"
        assert encoder.encode(uid, target, label, arrays, strings) == encode_example(
            uid, target, label, arrays, strings
        )
    with pytest.raises(ValueError):
        ExampleEncoder(["uid"])
    with pytest.raises(ValueError):
        ExampleEncoder(["x"], ["x"])
    with pytest.raises(KeyError):
        encoder.encode("u", "t", 0, {"a_view": np.ones(2)}, {"tce_uid": "", "note": ""})


def test_weight_counts_batches_and_several():
    record = ShardRecord("u", b"", {})
    assert [weight(x) for x in (record, ShardBatch((record, record)), Several(5), "uid", 3)] == [1, 2, 5, 1, 1]
    with TestPipeline(runner=FnApiRunner()) as p:
        pairs = p | beam.Create([ShardBatch((record,) * 4), record, Several(3)]) | Tally("n")
        assert_that(pairs | beam.CombinePerKey(sum), equal_to([("n", 8)]))


def test_heartbeat_counts_a_batch_as_its_records(tmp_path):
    folder = str(tmp_path / "_progress")
    record = ShardRecord("u", b"", {})
    with TestPipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create([ShardBatch((record,) * 5), record]) | progress.Heartbeat(folder, heartbeat_s=0.0)
    assert progress.read_count(folder) == 6


def _write(tmp_path, name, elements):
    folder = tmp_path / name
    with TestPipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create(elements, reshuffle=False) | WriteShards(str(folder), "x", 7, ["a"])
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def test_write_shards_writes_batches_as_the_records_one_by_one(tmp_path):
    uids = [f"s{i // 10}-{(i * 37) % 100:03d}" for i in range(45)]
    records = [
        ShardRecord(uid, r, {"target_id": "t", "label": 1, "a": i})
        for i, (uid, r) in enumerate(zip(uids, _records(uids), strict=True))
    ]
    batches = [ShardBatch(tuple(records[k : k + 10])) for k in range(0, 45, 10)]
    singles = _write(tmp_path, "singles", records)
    assert len(singles) == 2 * 7  # 45 records, 7 per shard: 7 shards and their tables
    assert _write(tmp_path, "batches", batches) == singles
    assert _write(tmp_path, "mixed", [batches[0], *records[10:20], *batches[2:]]) == singles
    with open(tmp_path / "batches" / "x_shard_0001-0007.tfrecord", "rb") as handle:
        assert [example_keys(r)[0] for r in iter_records(handle)] == sorted(uids[:7])
