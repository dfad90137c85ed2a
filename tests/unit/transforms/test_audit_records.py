"""Audit reads records: tampering inside a record (not visible in the tables) is caught, in-process and in Beam."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tensorflow.core.example import example_pb2

from beam_pipelines.commands.audit import BeamScanner
from beam_pipelines.dataset import fs as beam_fs
from tests.support.dataset_fixture import clean_dataset, copy_dataset, read_records, write_records
from transforms import audit, audit_values


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


@pytest.fixture
def ds(clean, tmp_path):
    return copy_dataset(clean, tmp_path / "ds")


def _edit_first_record(shard, edit):
    records = read_records(shard)
    example = example_pb2.Example.FromString(records[0])
    edit(example)
    records[0] = example.SerializeToString()
    write_records(shard, records)


def _first(folder, pattern):
    return sorted(folder.glob(pattern))[0]


def _audit(ds):
    return audit.audit_dataset(str(ds), fs=beam_fs)


def test_clean_dataset_passes_record_checks(clean):
    assert _audit(clean) == []


def test_target_id_changed_inside_a_raw_record(ds):
    def edit(example):
        example.features.feature["target_id"].bytes_list.value[0] = b"someone-else"

    _edit_first_record(_first(ds / "tfrecords", "raw_shard_*.tfrecord"), edit)
    problems = _audit(ds)
    assert any("someone-else" in p and "not in its data table" in p for p in problems)


def test_label_changed_inside_a_normalized_record(ds):
    def edit(example):
        example.features.feature["label"].int64_list.value[0] = 2

    _edit_first_record(_first(ds / "norm" / "val", "norm_val_shard_*.tfrecord"), edit)
    assert any("norm/val" in p and "'2')" in p for p in _audit(ds))


def test_nan_inside_a_normalized_record(ds):
    def edit(example):
        example.features.feature["strain"].float_list.value[3] = float("nan")

    _edit_first_record(_first(ds / "norm" / "test", "norm_test_shard_*.tfrecord"), edit)
    assert any("NaN/inf" in p and "norm/test" in p for p in _audit(ds))


def test_collapsed_train_split(ds):
    """Every normalized train example scaled to ~0: what one huge outlier in the statistics does."""
    for shard in (ds / "norm" / "train").glob("norm_train_shard_*.tfrecord"):
        records = []
        for record in read_records(shard):
            example = example_pb2.Example.FromString(record)
            values = np.asarray(example.features.feature["strain"].float_list.value) * 1e-6
            del example.features.feature["strain"].float_list.value[:]
            example.features.feature["strain"].float_list.value.extend(values.tolist())
            records.append(example.SerializeToString())
        write_records(shard, records)
    assert any("collapsed" in p for p in _audit(ds))


def test_record_moved_between_splits_with_counts_intact(ds):
    """A record moved from a val shard to a train shard, and a train record to val: record counts still agree
    with the tables and the manifest, only the records' contents betray it."""
    val, train = _first(ds / "split" / "val", "val_*.tfrecord"), _first(ds / "split" / "train", "train_*.tfrecord")
    val_records, train_records = read_records(val), read_records(train)
    val_records[0], train_records[0] = train_records[0], val_records[0]
    write_records(val, val_records)
    write_records(train, train_records)
    assert sum("not in its data table" in p for p in _audit(ds)) >= 2


def test_zero_std_statistic(ds):
    path = ds / "stats" / "train_stats.npz"
    with np.load(path) as arrays:
        data = {k: arrays[k] for k in arrays.files}
    data["std"] = np.zeros_like(data["std"])
    buffer = io.BytesIO()
    np.savez(buffer, **data)
    path.write_bytes(buffer.getvalue())
    assert any("'std' has values <= 0" in p for p in _audit(ds))


def test_beam_scanner_finds_what_the_in_process_scan_finds(ds, tmp_path):
    def edit(example):
        example.features.feature["uid"].bytes_list.value[0] = b"renamed"

    _edit_first_record(_first(ds / "split" / "train", "train_*.tfrecord"), edit)
    in_process = audit.audit_dataset(str(ds), fs=beam_fs, scanner=audit_values.in_process)
    in_beam = audit.audit_dataset(str(ds), fs=beam_fs, scanner=BeamScanner(str(tmp_path / "work")))
    assert in_process == in_beam and any("renamed" in p for p in in_beam)
