"""Audit: a clean dataset has no problems; each constructed defect is reported by name."""

from __future__ import annotations

import json
import logging
from collections import defaultdict

import numpy as np
import pytest

from beam_pipelines.commands.audit import run_audit
from beam_pipelines.dataset import fs as beam_fs
from tests.support.dataset_fixture import (
    build_dataset,
    clean_dataset,
    copy_dataset,
    read_records,
    read_table,
    write_records,
    write_table,
)
from transforms import audit, audit_folders, gfile_io
from transforms.contract import example_keys


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


@pytest.fixture
def ds(clean, tmp_path):
    """A private copy of the clean dataset, to damage."""
    return copy_dataset(clean, tmp_path / "ds")


def _matching(problems, *parts):
    return [p for p in problems if all(part in p for part in parts)]


def _tables(folder):
    return sorted(folder.glob("data_tbl_*.csv"))


# ---- pure helpers ------------------------------------------------------------------------------------------------


def test_check_sequence_cases():
    assert audit_folders.check_sequence([(1, 3), (2, 3), (3, 3)], "x") == []
    assert audit_folders.check_sequence([(1, 3), (3, 3)], "x") == ["x: sequence of 3 is incomplete, missing 0002"]
    assert "mixed totals [2, 3]" in audit_folders.check_sequence([(1, 2), (2, 3)], "x")[0]
    assert "outside 1..2" in audit_folders.check_sequence([(1, 2), (2, 2), (3, 2)], "x")[0]
    assert audit_folders.check_sequence([], "x") == ["x: none found"]


def test_check_accounting_cases():
    assert audit.check_accounting("s", {"seen": 5, "written": 3, "rejected": 2, "rejected_by_reason": {"a": 2}}) == []
    (problem,) = audit.check_accounting("s", {"seen": 6, "written": 3, "rejected": 2})
    assert "seen (6) != written (3) + rejected (2)" in problem and "1 inputs unaccounted" in problem
    (problem,) = audit.check_accounting("s", {"seen": 5, "written": 3, "rejected": 2, "rejected_by_reason": {"a": 1}})
    assert "sum of rejected_by_reason (1)" in problem


def test_count_records_detects_truncation(tmp_path):
    path = tmp_path / "x.tfrecord"
    write_records(path, [b"a" * 10, b"b" * 20])
    assert audit_folders.count_records(str(path)) == 2
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="record 2 is truncated"):
        audit_folders.count_records(str(path))


# ---- clean datasets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [gfile_io, beam_fs], ids=["gfile", "beam"])
def test_clean_dataset_has_no_problems(clean, caplog, fs):
    assert audit.audit_dataset(str(clean), fs=fs) == []
    assert audit.audit_dataset(str(clean), group_column="source_id", fs=fs) == []
    with (
        caplog.at_level(logging.INFO, "transforms.audit"),
        caplog.at_level(logging.INFO, "beam_pipelines.commands.audit"),
    ):
        assert run_audit(str(clean)) == 0
    assert "stage filter has not run" in caplog.text
    assert "is clean" in caplog.text


def test_partial_dataset_audits_only_the_stages_run(g2net_raw, tmp_path, caplog):
    out = build_dataset(g2net_raw, tmp_path / "ds", normalize=False)
    with caplog.at_level(logging.INFO, logger="transforms.audit"):
        assert audit.audit_dataset(str(out)) == []
    for stage in ("analyze", "normalize", "filter"):
        assert f"stage {stage} has not run" in caplog.text


def test_missing_manifest_is_a_problem(tmp_path):
    (problem,) = audit.audit_dataset(str(tmp_path))
    assert "manifest.json" in problem


def test_naive_split_leaks_sources_only_the_group_audit_sees(g2net_raw, tmp_path):
    """Split by sample id (g2net.yaml): each id is in one split, but sources with 2 signals straddle splits."""
    out = build_dataset(g2net_raw, tmp_path / "naive", recipe="run_configs/g2net.yaml", normalize=False)
    splits_of = defaultdict(set)
    for split in ("train", "val", "test"):
        for table in _tables(out / "split" / split):
            for row in read_table(table)[1]:
                splits_of[row["source_id"]].add(split)
    leaked = sorted(s for s, splits in splits_of.items() if len(splits) > 1)
    assert leaked, "the sample should contain a source split across splits (seeded; check the fixture)"
    assert audit.audit_dataset(str(out)) == []  # target_id = id: no target leak
    problems = audit.audit_dataset(str(out), group_column="source_id")
    assert sorted(p.split("'")[1] for p in _matching(problems, "split: source_id")) == leaked
    assert len(problems) == len(leaked)
    assert run_audit(str(out), group_column="source_id") == 1


# ---- constructed defects -----------------------------------------------------------------------------------------


def _move_example(ds, source_split, dest_split):
    """Moves one example whose target has >= 2 examples in ``source_split`` to ``dest_split``; returns its target."""
    src_dir, dst_dir = ds / "split" / source_split, ds / "split" / dest_split
    rows = [(t, r) for t in _tables(src_dir) for r in read_table(t)[1]]
    per_target = defaultdict(list)
    for table, row in rows:
        per_target[row["target_id"]].append((table, row))
    target = next(t for t, members in sorted(per_target.items()) if len(members) >= 2)
    table, row = per_target[target][0]
    shard = src_dir / row["shard"]
    records = read_records(shard)
    moved = next(r for r in records if example_keys(r)[0] == row["uid"])
    write_records(shard, [r for r in records if r != moved])
    columns, table_rows = read_table(table)
    write_table(table, columns, [r for r in table_rows if r["uid"] != row["uid"]])
    dest_table = _tables(dst_dir)[0]
    columns, dest_rows = read_table(dest_table)
    dest_shard = dst_dir / dest_rows[0]["shard"]
    write_records(dest_shard, read_records(dest_shard) + [moved])
    write_table(dest_table, columns, dest_rows + [{**row, "shard": dest_shard.name}])
    return target


def test_target_in_two_splits_is_reported(ds):
    target = _move_example(ds, "train", "val")
    problems = audit.audit_dataset(str(ds))
    leak = _matching(problems, f"split: target_id '{target}' is in more than one split")
    assert len(leak) == 1 and "train (" in leak[0] and "val (1 examples)" in leak[0]
    # the manifest's per-split counts no longer match the records either
    n_val = json.loads((ds / "manifest.json").read_text())["stages"]["split"]["splits"]["val"]["examples"]
    assert _matching(problems, f"split: split/val has {n_val + 1} records but the manifest says {n_val}")


def test_duplicated_uid_in_raw_shards_is_reported(ds):
    raw = ds / "tfrecords"
    table = _tables(raw)[0]
    columns, rows = read_table(table)
    shard = raw / rows[0]["shard"]
    records = read_records(shard)
    copy = next(r for r in records if example_keys(r)[0] == rows[0]["uid"])
    write_records(shard, records + [copy])
    write_table(table, columns, rows + [rows[0]])
    problems = audit.audit_dataset(str(ds))
    assert _matching(problems, f"build: uid '{rows[0]['uid']}' appears 2 times")
    assert _matching(problems, "build: tfrecords/ has 49 records but the manifest says written=48")


def test_duplicated_uid_within_a_norm_split_is_reported(ds):
    folder = ds / "norm" / "train"
    tables = _tables(folder)
    columns, rows = read_table(tables[0])
    other_columns, other_rows = read_table(tables[1])
    write_table(tables[1], other_columns, other_rows[:-1] + [{**rows[0], "shard": other_rows[-1]["shard"]}])
    problems = audit.audit_dataset(str(ds))
    assert _matching(problems, f"normalize: uid '{rows[0]['uid']}' appears 2 times (norm/train, norm/train)")


def test_manifest_seen_not_written_plus_rejected_is_reported(ds):
    data = json.loads((ds / "manifest.json").read_text())
    data["stages"]["build"]["seen"] += 2
    (ds / "manifest.json").write_text(json.dumps(data))
    problems = audit.audit_dataset(str(ds))
    assert problems == ["build: seen (50) != written (48) + rejected (0): 2 inputs unaccounted for"]


def test_norm_count_not_matching_split_is_reported(ds):
    folder = ds / "norm" / "val"
    table = _tables(folder)[0]
    columns, rows = read_table(table)
    shard = folder / rows[0]["shard"]
    write_records(shard, [r for r in read_records(shard) if example_keys(r)[0] != rows[0]["uid"]])
    write_table(table, columns, rows[1:])
    problems = audit.audit_dataset(str(ds))
    assert _matching(problems, "normalize: norm/val has 5 records but split/val has 6")
    n_val = json.loads((ds / "manifest.json").read_text())["stages"]["normalize"]["splits"]["val"]["examples"]
    assert _matching(problems, f"normalize: norm/val has {n_val - 1} records but the manifest says {n_val} examples")


def test_non_finite_statistics_are_reported(ds):
    path = ds / "stats" / "train_stats.npz"
    with np.load(path) as loaded:
        arrays = dict(loaded)
    arrays["std"][1] = np.nan
    arrays["mean"][0] = np.inf
    np.savez(path, **arrays)
    problems = audit.audit_dataset(str(ds))
    assert sorted(problems) == [
        "analyze: stats/train_stats.npz array 'mean' (3,) has 1 non-finite values (NaN/inf)",
        "analyze: stats/train_stats.npz array 'std' (3,) has 1 non-finite values (NaN/inf)",
    ]


def test_missing_shard_is_reported(ds):
    folder = ds / "split" / "train"
    shards = sorted(folder.glob("train_shard_*.tfrecord"))
    assert len(shards) >= 3
    shards[1].unlink()
    problems = audit.audit_dataset(str(ds))
    total = len(shards)
    assert _matching(problems, f"split/train: train shards: sequence of {total} is incomplete, missing 0002")
    assert _matching(problems, f"data_tbl_0002-{total:04d}.csv has no shard train_shard_0002-{total:04d}")


def test_data_table_not_matching_shards_is_reported(ds):
    folder = ds / "split" / "test"
    (table,) = _tables(folder)
    table.rename(folder / "data_tbl_0001-0002.csv")
    problems = audit.audit_dataset(str(ds))
    assert _matching(problems, "split/test: test_shard_0001-0001.tfrecord has no data table data_tbl_0001-0001.csv")
    assert _matching(problems, "split/test: data_tbl_0001-0002.csv has no shard test_shard_0001-0002")
    assert _matching(problems, "split/test: data tables: sequence of 2 is incomplete, missing 0002")


def test_truncated_shard_is_reported(ds):
    shard = sorted((ds / "norm" / "test").glob("norm_test_shard_*.tfrecord"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    problems = audit.audit_dataset(str(ds))
    assert _matching(problems, f"norm/test: {shard.name} is not a valid TFRecord file")
