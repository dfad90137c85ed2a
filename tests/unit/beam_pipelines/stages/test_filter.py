"""Filter: condition config validation, the pure evaluator, the PTransform, and an end-to-end run."""

from __future__ import annotations

import json
from collections import Counter

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.rejects import REJECTED
from beam_pipelines.stages import filter as filter_stage
from tests.support.dataset_fixture import build_dataset, clean_dataset, copy_dataset, read_table
from transforms import audit, filtering
from transforms.config import ConfigError, DatasetConfig, FilterCondition, load_config, validate
from transforms.contract import encode_example


def _cond(**kwargs) -> FilterCondition:
    return FilterCondition(**kwargs)


# ---- config ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition, code, named",
    [
        ({"name": "a"}, "config", "'a'"),  # no kind of test
        ({"name": "a", "labels": [1], "column": "snr", "op": ">", "value": 1}, "config", "'a'"),  # two kinds
        ({"name": "a", "column": "snr", "op": ">"}, "config", "'value'"),
        ({"name": "a", "op": ">", "value": 3}, "config", "'column'"),
        ({"name": "a", "column": "snr", "op": ">", "value": "loud"}, "config", "'loud'"),  # not a number
        ({"name": "a", "labels": []}, "config", "labels"),
        ({"name": "a", "labels": [0], "keep_listed": False}, "config", "keep_listed"),
        ({"name": "a b", "labels": [0]}, "config", "'a b'"),
        ({"name": "a", "labels": [0], "colum": "x"}, "unknown_key", "filter.conditions.0.colum"),
    ],
)
def test_bad_condition_configs_are_refused_with_the_key(condition, code, named):
    with pytest.raises(ConfigError) as info:
        validate(DatasetConfig, {"filter": {"conditions": [condition]}})
    assert info.value.code == code and "filter.conditions.0" in str(info.value) and named in str(info.value)


def test_duplicate_condition_names_are_refused():
    with pytest.raises(ConfigError) as info:
        validate(
            DatasetConfig, {"filter": {"conditions": [{"name": "x", "labels": [0]}, {"name": "x", "labels": [1]}]}}
        )
    assert info.value.code == "config" and "filter.conditions" in str(info.value) and "'x'" in str(info.value)


def test_example_filter_config_loads():
    config = load_config(DatasetConfig, "run_configs/filter_example.yaml")
    kinds = [
        (c.labels is not None, c.column is not None, c.target_ids_file is not None) for c in config.filter.conditions
    ]
    assert all(sum(k) == 1 for k in kinds) and len(kinds) >= 3
    listed = next(c for c in config.filter.conditions if c.target_ids_file)
    with open(listed.target_ids_file) as handle:
        assert filtering.parse_id_list(handle.read())


# ---- pure evaluator ----------------------------------------------------------------------------------------------


CONDITIONS = [
    _cond(name="signals", labels=[1]),
    _cond(name="loud", column="snr", op=">=", value=8),
    _cond(name="not_bad", target_ids_file="bad.txt", keep_listed=False),
    _cond(name="only_h1", column="detector", op="==", value="H1"),
]
LISTS = {"not_bad": frozenset({"t-bad"})}


@pytest.mark.parametrize(
    "row, kept, reason, failed",
    [
        ({"label": 1, "target_id": "t", "snr": "9.5", "detector": "H1"}, True, None, ()),
        ({"label": 1, "target_id": "t", "snr": "8", "detector": " H1 "}, True, None, ()),
        ({"label": 0, "target_id": "t", "snr": "9.5", "detector": "H1"}, False, "condition:signals", ("signals",)),
        ({"label": 1, "target_id": "t", "snr": "7.99", "detector": "H1"}, False, "condition:loud", ("loud",)),
        ({"label": 1, "target_id": "t", "snr": "", "detector": "H1"}, False, "condition:loud:non_numeric", ("loud",)),
        (
            {"label": 1, "target_id": "t", "snr": "nan", "detector": "H1"},
            False,
            "condition:loud:non_numeric",
            ("loud",),
        ),
        ({"label": 1, "target_id": "t", "snr": "inf", "detector": "H1"}, True, None, ()),
        ({"label": 1, "target_id": "t-bad", "snr": "9", "detector": "H1"}, False, "condition:not_bad", ("not_bad",)),
        ({"label": 1, "target_id": "t", "snr": "9", "detector": "L1"}, False, "condition:only_h1", ("only_h1",)),
        (
            {"label": "0", "target_id": "t-bad", "snr": "x", "detector": "V1"},
            False,
            "condition:signals",
            ("signals", "loud", "not_bad", "only_h1"),
        ),
    ],
)
def test_evaluate_hand_cases(row, kept, reason, failed):
    verdict = filtering.evaluate(CONDITIONS, row, LISTS)
    assert (verdict.kept, verdict.reason, verdict.failed) == (kept, reason, failed)
    assert bool(verdict.detail) == (not kept)


@pytest.mark.parametrize(
    "op, value, expected",
    [("<", 3, [True, False, False]), ("<=", 3, [True, True, False]), (">", 3, [False, False, True])]
    + [(">=", 3, [False, True, True]), ("==", 3, [False, True, False]), ("!=", 3.0, [True, False, True])]
    + [("==", "3", [False, True, False]), ("==", "3.0", [False, False, False])],
)
def test_evaluate_column_ops(op, value, expected):
    condition = _cond(name="c", column="x", op=op, value=value)
    assert [filtering.evaluate([condition], {"x": x}).kept for x in ("2.5", "3", "4e0")] == expected


def test_keep_listed_keeps_only_listed_targets():
    condition = _cond(name="mine", target_ids_file="ids.txt")
    ids = filtering.parse_id_list("# my targets\n a \n\nb\n")
    assert ids == {"a", "b"}
    assert [filtering.evaluate([condition], {"target_id": t}, {"mine": ids}).kept for t in "abc"] == [1, 1, 0]


def test_validate_conditions_names_the_condition():
    with pytest.raises(ConfigError) as info:
        filtering.validate_conditions(CONDITIONS[:2], ["uid", "target_id", "label"], "norm/x")
    assert info.value.code == "config" and all(name in str(info.value) for name in ("'loud'", "'snr'", "norm/x"))
    with pytest.raises(ConfigError) as info:
        filtering.validate_conditions([], ["uid"], "norm/x")
    assert info.value.code == "config" and "filter.conditions" in str(info.value)
    filtering.check_numeric_column(CONDITIONS[1], ["", "1.5", "", "2"], "w")  # sparse numeric column is fine
    filtering.check_numeric_column(CONDITIONS[3], ["H1", "L1"], "w")  # string equality needs no numbers
    with pytest.raises(ConfigError) as info:
        filtering.check_numeric_column(CONDITIONS[1], ["f23fbce9e6", "07457f2965", "1234567e89"], "w")
    assert info.value.code == "config" and "'loud'" in str(info.value) and "'snr'" in str(info.value)


# ---- PTransform --------------------------------------------------------------------------------------------------


def test_apply_conditions_under_test_pipeline():
    conditions = [_cond(name="signals", labels=[1]), _cond(name="loud", column="snr", op=">", value=5)]
    examples = [("train", encode_example(uid, f"t{uid}", label, {"strain": np.zeros((3, 4))})) for uid, label in
                [("a", 1), ("b", 0), ("c", 1), ("d", 0), ("e", 1)]]  # fmt: skip
    rows = [(("train", uid), {"uid": uid, "target_id": "stale", "label": "9", "snr": snr})
            for uid, snr in [("a", "9"), ("b", "9"), ("c", "2"), ("d", ""), ("z", "1")]]  # fmt: skip
    # a row joins its own split only: the val example "a" finds no row (its train row does not serve it)
    examples.append(("val", encode_example("a", "ta", 1, {"strain": np.zeros((3, 4))})))
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as p:
        out = (p | "Examples" >> beam.Create(examples), p | "Rows" >> beam.Create(rows)) | filter_stage.ApplyConditions(
            conditions, {}
        )
        assert_that(
            out.kept
            | beam.Map(lambda kv: (kv[0], kv[1].uid, kv[1].row["target_id"], kv[1].row["label"], kv[1].row["snr"])),
            equal_to([("train", "a", "ta", 1, "9")]),
            label="Kept",
        )
        assert_that(out[filter_stage.REMOVED], equal_to(["train"] * 4 + ["val"]), label="Removed")
        assert_that(
            out[REJECTED] | beam.Map(lambda r: (r.uid_or_path, r.stage, r.reason, r.detail.startswith("[train]"))),
            equal_to(
                [
                    ("b", "filter", "condition:signals", True),
                    ("c", "filter", "condition:loud", True),
                    ("d", "filter", "condition:signals", True),
                    ("e", "filter", filter_stage.MISSING_TABLE_ROW, True),
                    ("a", "filter", filter_stage.MISSING_TABLE_ROW, False),  # "[val] ..."
                ]
            ),
            label="Rejected",
        )
        assert_that(out[filter_stage.FAILED], equal_to(["signals", "loud", "signals", "loud"]), label="Failed")
        assert_that(out[filter_stage.ORPHANS], equal_to(["z"]), label="Orphans")


# ---- end to end --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


def _norm_rows(ds):
    rows = {}
    for split in ("train", "val", "test"):
        for table in sorted((ds / "norm" / split).glob("data_tbl_*.csv")):
            rows.update({r["uid"]: {**r, "split": split} for r in read_table(table)[1]})
    return rows


def _expected(rows, excluded, snr_cap):
    """Hand evaluation of the e2e conditions below: (reason of first failure or None, failing names) per uid."""
    result = {}
    for uid, r in rows.items():
        failed = []
        if r["target_id"] in excluded:
            failed.append(("not_excluded", "condition:not_excluded"))
        if float(r["snr"]) >= snr_cap:
            failed.append(("snr_cap", "condition:snr_cap"))
        if r["m1"] == "":
            failed.append(("light", "condition:light:non_numeric"))
        elif float(r["m1"]) > 30:
            failed.append(("light", "condition:light"))
        result[uid] = (failed[0][1] if failed else None, [name for name, _ in failed])
    return result


@pytest.fixture(scope="module")
def filtered(clean, tmp_path_factory):
    base = tmp_path_factory.mktemp("filter")
    ds = copy_dataset(clean, base / "ds")
    rows = _norm_rows(ds)
    # exclude two targets: one noise-only target and one signal target
    noise = sorted(r["target_id"] for r in rows.values() if r["label"] == "0")[0]
    signal = sorted(r["target_id"] for r in rows.values() if r["label"] == "1")[0]
    (base / "exclude.txt").write_text(f"# excluded\n{noise}\n{signal}\n")
    conditions = [
        {"name": "both_labels", "labels": [0, 1]},
        {"name": "not_excluded", "target_ids_file": str(base / "exclude.txt"), "keep_listed": False},
        {"name": "snr_cap", "column": "snr", "op": "<", "value": 12},
        {"name": "light", "column": "m1", "op": "<=", "value": 30},
    ]
    config = load_config(
        DatasetConfig,
        "run_configs/demo.yaml",
        [f"filter={json.dumps({'conditions': conditions, 'examples_per_shard': 5})}"],
    )
    result = filter_stage.run_filter(config, str(ds))
    return {"ds": ds, "config": config, "manifest": result, "expected": _expected(rows, {noise, signal}, 12.0)}


def test_filter_counts_per_condition(filtered):
    stage = filtered["manifest"]["stages"]["filter"]
    expected = filtered["expected"]
    by_reason = Counter(reason for reason, _ in expected.values() if reason)
    totals = Counter(name for _, names in expected.values() for name in names)
    assert set(by_reason) == {"condition:not_excluded", "condition:snr_cap", "condition:light:non_numeric",
                              "condition:light"}  # fmt: skip
    assert stage["rejected_by_reason"] == dict(by_reason)
    assert stage["removed_by_condition"] == {
        "both_labels": 0,
        **{k: totals[k] for k in ("not_excluded", "snr_cap", "light")},
    }
    assert stage["seen"] == len(expected) == 48
    assert stage["written"] == sum(reason is None for reason, _ in expected.values())
    assert stage["seen"] == stage["written"] + stage["rejected"]
    assert stage["orphan_table_rows"] == 0


def test_filter_writes_norm_shaped_shards(filtered):
    ds, expected = filtered["ds"], filtered["expected"]
    stage = filtered["manifest"]["stages"]["filter"]
    spec = {
        "uid": tf.io.FixedLenFeature([], tf.string),
        "target_id": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "strain": tf.io.FixedLenFeature([3, 4096], tf.float32),
    }
    kept_uids = []
    for split in ("train", "val", "test"):
        shards = sorted(str(p) for p in (ds / "filtered" / split).glob(f"norm_{split}_shard_*.tfrecord"))
        parsed = list(tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, spec)))
        assert len(parsed) == stage["splits"][split]["examples"]
        kept_uids += [p["uid"].numpy().decode() for p in parsed]
        norm_columns = read_table(sorted((ds / "norm" / split).glob("data_tbl_*.csv"))[0])[0]
        assert read_table(sorted((ds / "filtered" / split).glob("data_tbl_*.csv"))[0])[0] == norm_columns
    assert sorted(kept_uids) == sorted(uid for uid, (reason, _) in expected.items() if reason is None)
    removed = read_table(ds / "rejected" / "filter.csv")[1]
    assert sorted((r["uid_or_path"], r["reason"]) for r in removed) == sorted(
        (uid, reason) for uid, (reason, _) in expected.items() if reason
    )
    assert all(r["stage"] == "filter" and r["detail"] for r in removed)
    assert not list(ds.glob(".tmp_*"))


def test_filtered_dataset_passes_the_audit(filtered):
    assert audit.audit_dataset(str(filtered["ds"]), group_column="source_id") == []


def test_rerun_without_overwrite_is_refused(filtered):
    with pytest.raises(StageError) as info:
        filter_stage.run_filter(filtered["config"], str(filtered["ds"]))
    assert info.value.code == "output_exists"


@pytest.mark.parametrize(
    "condition, named",
    [
        ({"name": "odd", "column": "snrr", "op": ">", "value": 1}, "'snrr'"),  # not a column
        ({"name": "ids", "column": "source_id", "op": ">", "value": 3}, "'source_id'"),  # not numeric
        ({"name": "lst", "target_ids_file": "/nonexistent/ids.txt"}, "/nonexistent/ids.txt"),
    ],
)
def test_bad_conditions_fail_before_any_work(clean, tmp_path, condition, named):
    ds = copy_dataset(clean, tmp_path / "ds")
    config = load_config(DatasetConfig, "run_configs/demo.yaml", [f"filter={json.dumps({'conditions': [condition]})}"])
    with pytest.raises(ConfigError) as info:
        filter_stage.run_filter(config, str(ds))
    assert info.value.code == "config" and f"'{condition['name']}'" in str(info.value) and named in str(info.value)
    assert not (ds / "filtered").exists() and not (ds / ".tmp_filter").exists()
    assert "filter" not in json.loads((ds / "manifest.json").read_text())["stages"]


def test_filter_and_audit_on_the_real_chain(g2net_raw, tmp_path):
    """build, split, the real analyze and normalize, then the example filter; the audit passes at each end."""
    from beam_pipelines.stages.analyze import run_analyze
    from beam_pipelines.stages.normalize import run_normalize

    ds = build_dataset(g2net_raw, tmp_path / "ds", normalize=False)
    raw = load_config(DatasetConfig, "run_configs/filter_example.yaml").model_dump(mode="json")
    raw["filter"]["conditions"][1]["value"] = 15  # the dumped config validates again (manifest round trip)
    config = validate(DatasetConfig, raw)
    with pytest.raises(StageError) as info:
        filter_stage.run_filter(config, str(ds))
    assert info.value.code == "missing_stage" and "'normalize'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        filter_stage.run_filter(load_config(DatasetConfig, "run_configs/demo.yaml"), str(ds))
    assert info.value.code == "config" and "'filter'" in str(info.value)
    run_analyze(config, str(ds))
    run_normalize(config, str(ds))
    assert audit.audit_dataset(str(ds), group_column="source_id") == []
    stage = filter_stage.run_filter(config, str(ds))["stages"]["filter"]
    loud = sum(float(r["snr"]) >= 15 for r in _norm_rows(ds).values())
    assert loud and stage["rejected_by_reason"] == {"condition:no_extreme_snr": loud}
    assert stage["seen"] == 48 and stage["written"] == 48 - loud
    assert audit.audit_dataset(str(ds), group_column="source_id") == []
    spec = {"strain": tf.io.FixedLenFeature([3, 4096], tf.float32), "label": tf.io.FixedLenFeature([], tf.int64)}
    shards = sorted(str(p) for p in (ds / "filtered" / "train").glob("norm_train_shard_*.tfrecord"))
    parsed = list(tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, spec)))
    assert len(parsed) == stage["splits"]["train"]["examples"] > 0
