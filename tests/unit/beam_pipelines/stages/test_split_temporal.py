"""Temporal split (split.mode: temporal): targets ordered by their earliest example's time, cut by times or by
fractions of targets; straddling targets counted; the audit's time-order and rule checks. On a synthetic time
column (under a test pipeline) and on the TCE recipe's ``midtime`` column."""

from __future__ import annotations

import csv
import json
import shutil

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipelines.io.counting import Counts
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.stages import split_modes
from transforms.config import ConfigError, DatasetConfig, load_config, validate
from transforms.contract import encode_example
from transforms.errors import SigforgeError
from transforms.splitting import temporal_assignment, temporal_order_problems

# target -> (min, max) time of its examples
RANGES = {"a": (0.0, 1.0), "b": (1.0, 5.0), "c": (2.0, 2.0), "d": (3.0, 9.0), "e": (6.0, 7.0)}


def test_cuts_assign_by_the_earliest_example_and_count_straddlers():
    plan = temporal_assignment(RANGES, cuts=[2.5, 5.0])
    assert plan.splits == {"a": "train", "b": "train", "c": "train", "d": "val", "e": "test"}
    assert plan.starts == {"train": None, "val": 2.5, "test": 5.0}
    assert plan.straddling == ["b", "d"]  # b: 1..5 across 2.5; d: 3..9 across 5


def test_fractions_cut_the_targets_in_time_order():
    plan = temporal_assignment(RANGES, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert plan.splits == {"a": "train", "b": "train", "c": "train", "d": "val", "e": "test"}
    assert plan.starts == {"train": None, "val": 3.0, "test": 6.0}
    assert plan.straddling == ["b", "d"]
    no_val = temporal_assignment(RANGES, {"train": 0.8, "val": 0.0, "test": 0.2})
    assert no_val.starts["val"] is None and no_val.splits["e"] == "test" and no_val.straddling == ["d"]


def test_time_order_problems():
    assert temporal_order_problems({"train": [0, 1, 2], "val": [2, 3], "test": [4]}) == []
    assert temporal_order_problems({"train": [0, 5], "val": [], "test": [4]}) != []


def test_config_needs_a_time_column_and_ascending_cuts():
    base = {"recipe": "tce", "split": {"mode": "temporal"}}
    with pytest.raises(ConfigError, match="needs time_column"):
        validate(DatasetConfig, base)
    with pytest.raises(ConfigError, match="ascending"):
        validate(DatasetConfig, {**base, "split": {"mode": "temporal", "time_column": "t", "cuts": [5, 1]}})
    with pytest.raises(ConfigError, match="only for mode: temporal"):
        validate(DatasetConfig, {"recipe": "tce", "split": {"time_column": "t"}})


def _record(uid: str, target: str, time: str) -> ShardRecord:
    return ShardRecord(
        uid, encode_example(uid, target, 0, {}), {"uid": uid, "target_id": target, "label": 0, "t": time}
    )


def _read(folder):
    rows = []
    for path in sorted(folder.glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def test_split_by_time_on_a_synthetic_column(tmp_path):
    examples = sorted({(target, time) for target, (low, high) in RANGES.items() for time in (low, high)})
    records = [_record(f"{target}-{time}", target, repr(time)) for target, time in examples]
    split = validate(DatasetConfig, {"split": {"mode": "temporal", "time_column": "t", "cuts": [2.5, 5.0]}}).split
    plan_path = str(tmp_path / "plan.json")
    with TestPipeline(runner=FnApiRunner()) as p:
        counts = p | beam.Create(records) | split_modes.SplitByTime(str(tmp_path), split, ["t"], plan_path)
        _ = (
            counts
            | beam.CombinePerKey(sum)
            | beam.combiners.ToDict()
            | beam.Map(lambda d: (tmp_path / "counts.json").write_text(json.dumps(d)))
        )
    counts = Counts(json.loads((tmp_path / "counts.json").read_text()))
    where = {row["target_id"]: split for split in ("train", "val", "test") for row in _read(tmp_path / split)}
    assert where == {"a": "train", "b": "train", "c": "train", "d": "val", "e": "test"}
    entry = split_modes.temporal_entry(counts, split, plan_path)
    assert (entry["straddling_targets"], entry["straddling_examples"]) == (2, 2)  # b at 5.0, d at 9.0
    assert entry["straddling_sample"] == ["b", "d"] and entry["starts"]["test"] == 5.0


def test_an_example_without_time_fails_the_stage(tmp_path):
    split = validate(DatasetConfig, {"split": {"mode": "temporal", "time_column": "t"}}).split
    with pytest.raises(SigforgeError) as failed:
        split_modes.temporal_entry(Counts({"time_missing": 3}), split, str(tmp_path / "none.json"))
    assert failed.value.code == "time_missing"


# ---- the TCE recipe's midtime ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def temporal_tce(tmp_path_factory):
    from beam_pipelines.stages.build import run_build
    from beam_pipelines.stages.split import run_split
    from transforms.recipes import REGISTRY

    raw = tmp_path_factory.mktemp("tce_raw")
    REGISTRY["tce"].make_sample(str(raw), 12, 4)
    out = tmp_path_factory.mktemp("temporal") / "ds"
    sets = ["split.mode=temporal", "split.time_column=midtime", "split.fractions={train: 0.5, val: 0.25, test: 0.25}"]
    config = load_config(DatasetConfig, "run_configs/tce_kepler.yaml", sets)
    run_build(config, str(raw), str(out))
    return out, config, run_split(config, str(out))


def test_tce_midtime_split_holds_the_time_order(temporal_tce):
    out, _, result = temporal_tce
    entry = result["stages"]["split"]
    keys = {}
    for split in ("train", "val", "test"):
        starts = {}
        for row in _read(out / "split" / split):
            starts[row["target_id"]] = min(starts.get(row["target_id"], float("inf")), float(row["midtime"]))
        keys[split] = list(starts.values())
    assert all(keys.values())
    assert temporal_order_problems(keys) == []
    assert (entry["mode"], entry["time_column"]) == ("temporal", "midtime")
    assert entry["straddling_targets"] >= 1  # stars observed for years straddle any cut
    assert sum(entry["splits"][s]["examples"] for s in ("train", "val", "test")) == entry["written"]


def test_audit_checks_the_temporal_rule(temporal_tce, tmp_path):
    from transforms.audit import audit_dataset

    out = temporal_tce[0]
    assert audit_dataset(str(out)) == []
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = manifest["stages"]["split"]
    entry["straddling_targets"] += 1
    entry["fractions"] = {"train": 0.25, "val": 0.25, "test": 0.5}  # not the rule the split was made with
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = audit_dataset(str(copy))
    assert any("not where the temporal rule puts them" in p for p in problems), problems
    assert any("targets straddle a cut, the manifest says" in p for p in problems), problems


def test_a_missing_time_column_is_refused_before_any_work(temporal_tce):
    from beam_pipelines.stages.split import run_split

    out, config, _ = temporal_tce
    other = load_config(DatasetConfig, "run_configs/tce_kepler.yaml", ["split.mode=temporal", "split.time_column=gps"])
    with pytest.raises(ConfigError, match="no column 'gps'"):
        run_split(other, str(out), overwrite=True)
    assert config.split.time_column == "midtime"
