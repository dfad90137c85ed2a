"""Sharded TFRecord + data-table writer shared by every stage.

Shard files follow the seed naming, 1-based with the total: ``{prefix}_shard_0001-0016.tfrecord`` beside
``data_tbl_0001-0016.csv``. The shard count comes from a target number of examples per shard, so no shard can
grow without bound; an example's shard is sha256(uid) mod the count, so the layout is deterministic.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.tfrecordio import _TFRecordUtil
from apache_beam.metrics import Metrics

from beam_pipelines import fs

BASE_COLUMNS = ("uid", "target_id", "label", "shard")


class ShardRecord(NamedTuple):
    """One example on its way to a shard: its serialized tf.Example and its data-table row."""

    uid: str
    example: bytes
    row: dict[str, Any]


def shard_name(prefix: str, index: int, total: int) -> str:
    return f"{prefix}_shard_{index + 1:04d}-{total:04d}.tfrecord"


def table_name(index: int, total: int) -> str:
    return f"data_tbl_{index + 1:04d}-{total:04d}.csv"


def num_shards_for(count: int, examples_per_shard: int) -> int:
    return max(1, math.ceil(count / examples_per_shard))


def shard_of(uid: str, total: int) -> int:
    return int.from_bytes(hashlib.sha256(uid.encode("utf-8")).digest()[:8], "big") % total


def shard_glob(folder: str, prefix: str) -> str:
    return fs.join(folder, f"{prefix}_shard_*-*.tfrecord")


def table_glob(folder: str) -> str:
    return fs.join(folder, "data_tbl_*-*.csv")


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


class _WriteShardFn(beam.DoFn):
    def __init__(self, folder: str, prefix: str, columns: Sequence[str], counter_namespace: str):
        self._folder = folder
        self._prefix = prefix
        self._columns = list(columns)
        self._shards = Metrics.counter(counter_namespace, f"shards_written[{prefix}]")
        self._examples = Metrics.counter(counter_namespace, f"examples_written[{prefix}]")

    def process(self, element, total: int):
        index, grouped = element
        records = sorted(grouped["records"], key=lambda record: record.uid)
        name = shard_name(self._prefix, index, total)
        with fs.create(fs.join(self._folder, name)) as handle:
            for record in records:
                _TFRecordUtil.write_record(handle, record.example)
        rows = [{**record.row, "uid": record.uid, "shard": name} for record in records]
        fs.write_text(fs.join(self._folder, table_name(index, total)), format_table(rows, self._columns))
        self._shards.inc()
        self._examples.inc(len(records))
        yield {"shard": name, "examples": len(records)}


class WriteShards(beam.PTransform):
    """Writes ``ShardRecord``s to ``folder`` as numbered TFRecord shards plus data tables.

    Returns a PCollection with one ``{"shard", "examples"}`` dict per shard written (empty shards included,
    so the NNNN-TOTAL sequence is always complete).
    """

    def __init__(
        self,
        folder: str,
        prefix: str,
        examples_per_shard: int,
        extra_columns: Sequence[str] = (),
        counter_namespace: str = "sigforge",
    ):
        super().__init__()
        self._folder = folder
        self._prefix = prefix
        self._per_shard = examples_per_shard
        self._columns = list(BASE_COLUMNS) + [c for c in extra_columns if c not in BASE_COLUMNS]
        self._namespace = counter_namespace

    def expand(self, records):
        per_shard = self._per_shard
        total = (
            records
            | "CountExamples" >> beam.combiners.Count.Globally()
            | "NumShards" >> beam.Map(lambda count: num_shards_for(count, per_shard))
        )
        total_side = beam.pvalue.AsSingleton(total)
        keyed = records | "AssignShard" >> beam.Map(lambda r, n: (shard_of(r.uid, n), r), n=total_side)
        indices = total | "ShardIndices" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        return (
            {"records": keyed, "index": indices}
            | "GroupByShard" >> beam.CoGroupByKey()
            | "WriteShard"
            >> beam.ParDo(_WriteShardFn(self._folder, self._prefix, self._columns, self._namespace), total_side)
        )


class WriteJson(beam.PTransform):
    """Combines ``(key, number)`` pairs into one ``{key: sum}`` JSON file at ``path`` (a stage summary)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pairs):
        path = self._path
        return (
            pairs
            | "SumPerKey" >> beam.CombinePerKey(sum)
            | "ToDict" >> beam.combiners.ToDict()
            | "Write" >> beam.Map(lambda d: fs.write_text(path, json.dumps(d, sort_keys=True)))
        )
