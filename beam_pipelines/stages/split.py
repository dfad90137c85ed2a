"""Split stage: raw shards -> ``OUT/split/{train,val,test}/{split}_shard_NNNN-TOTAL.tfrecord`` + data tables.

A target's split is a pure function of sha256(salt + target_id) and the configured fractions (TFX ExampleGen
style), so a target lands in exactly one split whatever the runner, worker count or shard layout.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.tfrecordio import _TFRecordUtil
from apache_beam.metrics import Metrics

from beam_pipelines import fs, manifest
from beam_pipelines.options import make_pipeline_options
from beam_pipelines.shards import (
    ShardRecord,
    WriteJson,
    WriteShards,
    counts_under,
    read_table,
    shard_glob,
    table_for_shard,
    table_glob,
)
from transforms.config import DatasetConfig
from transforms.contract import example_keys
from transforms.splitting import SPLITS, assign_split

_LOG = logging.getLogger(__name__)
STAGE = "split"
SUMMARY_FILE = "_summary.json"


def table_columns(folder: str) -> list[str]:
    paths = fs.glob(table_glob(folder))
    if not paths:
        return []
    with fs.open_read(paths[0]) as handle:
        return next(csv.reader([handle.readline().decode("utf-8")]))


def read_shard_with_table(shard_path: str):
    """Yields a ShardRecord per example of one shard, with its row from the shard's own data table.

    Reading a shard together with its table joins examples and rows without shuffling any example; memory is
    bounded by one shard's table.
    """
    rows = {row["uid"]: row for row in read_table(table_for_shard(shard_path))}
    with fs.open_read(shard_path) as handle:
        while (serialized := _TFRecordUtil.read_record(handle)) is not None:
            uid, target_id, label = example_keys(serialized)
            row = {k: v for k, v in rows.get(uid, {}).items() if k != "shard"}
            yield ShardRecord(uid, serialized, {**row, "uid": uid, "target_id": target_id, "label": label})


class ReadShards(beam.PTransform):
    """Shard files matching ``pattern`` -> ShardRecords (example + data-table row), read file by file."""

    def __init__(self, pattern: str):
        super().__init__()
        self._pattern = pattern

    def expand(self, pipeline):
        return (
            pipeline
            | "MatchShards" >> fileio.MatchFiles(self._pattern)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadShardWithTable" >> beam.FlatMap(lambda meta: read_shard_with_table(meta.path))
        )


class _AssignSplitFn(beam.DoFn):
    """Tags a ShardRecord with its target's split."""

    def __init__(self, fractions: dict[str, float], salt: str):
        self._fractions = fractions
        self._salt = salt
        self._counters = {split: Metrics.counter(STAGE, f"examples[{split}]") for split in SPLITS}

    def process(self, record: ShardRecord):
        split = assign_split(record.row["target_id"], self._fractions, self._salt)
        self._counters[split].inc()
        yield beam.pvalue.TaggedOutput(split, record)


def key_by_uid(serialized: bytes) -> tuple[str, bytes]:
    return example_keys(serialized)[0], serialized


class _ParseTableLineFn(beam.DoFn):
    def __init__(self, header: list[str]):
        self._header = header

    def process(self, line: str):
        row = dict(zip(self._header, next(csv.reader([line])), strict=False))
        row.pop("shard", None)
        yield row["uid"], row


def _count_pairs(split: str, records):
    """(key, n) pairs for the manifest: examples, distinct targets and examples per label of one split."""
    examples = records | f"ExamplePairs[{split}]" >> beam.Map(lambda r: (f"{split}/examples", 1))
    labels = records | f"LabelPairs[{split}]" >> beam.Map(lambda r: (f"{split}/label/{r.row['label']}", 1))
    targets = (
        records
        | f"TargetIds[{split}]" >> beam.Map(lambda r: r.row["target_id"])
        | f"DistinctTargets[{split}]" >> beam.Distinct()
        | f"TargetPairs[{split}]" >> beam.Map(lambda _: (f"{split}/targets", 1))
    )
    return [examples, labels, targets]


class SplitByTarget(beam.PTransform):
    """Raw ShardRecords -> one WriteShards[split] per split under ``folder``; returns (count key, n) pairs."""

    def __init__(self, folder: str, fractions: dict[str, float], salt: str, examples_per_shard: int, columns):
        super().__init__()
        self._folder = folder
        self._fractions = dict(fractions)
        self._salt = salt
        self._per_shard = examples_per_shard
        self._columns = list(columns)

    def expand(self, records):
        tagged = records | "AssignSplit" >> beam.ParDo(_AssignSplitFn(self._fractions, self._salt)).with_outputs(
            *SPLITS
        )
        pairs = []
        for split in SPLITS:
            split_records = tagged[split]
            split_records | f"WriteShards[{split}]" >> WriteShards(
                fs.join(self._folder, split), split, self._per_shard, self._columns, STAGE
            )
            pairs += _count_pairs(split, split_records)
        seen = records | "SeenPairs" >> beam.Map(lambda _: ("seen", 1))
        return (*pairs, seen) | "FlattenCounts" >> beam.Flatten()


def summarize_counts(counts: dict[str, int]) -> dict[str, Any]:
    """Flat ``split/...`` counts -> the manifest entry (per split: examples, targets, labels)."""
    splits = {}
    for split in SPLITS:
        labels = counts_under(counts, f"{split}/label/")
        splits[split] = {
            "examples": counts.get(f"{split}/examples", 0),
            "targets": counts.get(f"{split}/targets", 0),
            "labels": labels,
        }
    written = sum(s["examples"] for s in splits.values())
    return {"seen": counts.get("seen", 0), "written": written, "rejected": 0, "splits": splits}


def run_split(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs the split stage on ``out/tfrecords`` and returns the updated manifest."""
    run = manifest.begin_stage(out, STAGE, overwrite, requires="build")
    raw_dir = fs.join(out, "tfrecords")
    header = table_columns(raw_dir)
    _LOG.info("split: %s, fractions %s", raw_dir, config.split.fractions)
    started = time.monotonic()
    with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        _ = (
            pipeline
            | "ReadRaw" >> ReadShards(shard_glob(raw_dir, "raw"))
            | "SplitByTarget"
            >> SplitByTarget(
                run.tmp_path("split"),
                config.split.fractions,
                config.split.salt,
                config.split.examples_per_shard,
                [c for c in header if c != "shard"],
            )
            | "WriteSummary" >> WriteJson(run.tmp_path(SUMMARY_FILE))
        )
    summary = summarize_counts(json.loads(fs.read_text(run.tmp_path(SUMMARY_FILE))))
    summary.update(fractions=dict(config.split.fractions), salt=config.split.salt)
    summary["seconds"] = round(time.monotonic() - started, 2)
    _LOG.info("split: %s", {s: v["examples"] for s, v in summary["splits"].items()})
    return manifest.finish_stage(run, summary)
