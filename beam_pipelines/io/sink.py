"""The sharded TFRecord + data-table writer shared by every stage (``WriteShards``).

Shard files follow the seed naming, 1-based with the total: ``{prefix}_shard_0001-0016.tfrecord`` beside
``data_tbl_0001-0016.csv``. No shard holds more than ``examples_per_shard`` examples.

Writing follows Beam's own file sinks with runner-chosen sharding: each bundle collects its examples into parts
of at most ``examples_per_shard`` examples (the only examples held in memory), and writes each part once, in uid
order, as a temporary part file when it is full or the bundle ends; no example is shuffled. A finalize step then
sees only the list of parts (one small dict per part), orders them by their first uid, and renames each to its
final ``NNNN-TOTAL`` name, putting the shard name into its data table.
``WriteShards.per_key`` does the same for several destinations (normalize: one per split) in one set of steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from beam_pipelines.dataset import fs
from beam_pipelines.io.records import ShardRecord, records_of
from beam_pipelines.io.tables import format_table, shard_table, with_base_columns
from transforms.contract import shard_name, table_name
from transforms.tfrecord import write_record

PART_PREFIX = "_part-"
SHARD_TOKEN = "sigforge-shard-"  # + the part's uuid: the shard column of a part's table, until finalize


def in_global_window(value: Any) -> WindowedValue:
    """``value`` as ``finish_bundle`` must yield it (it has no element whose window it could take)."""
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


class _WritePartsFn(beam.DoFn):
    """Collects ShardRecords (alone or in ShardBatches; ``(key, record or batch)`` pairs when ``keyed``, one
    destination folder per key) into parts of at most ``per_shard`` examples, one open part per key, each written
    in uid order when full (or at the bundle's end) as a part file plus its table; yields one dict per part. A
    part is held in memory until then (at most ``per_shard`` serialized examples), so the order in which a bundle
    delivered them (which varies between runs) never reaches the bytes, and finalize only renames the file.

    The part's table is the shard's table already (rows in the same uid order, every column), but for the shard
    column, which holds a token unique to the part (``shard_token`` in the part's dict): finalize replaces it
    with the shard's name."""

    def __init__(self, folders: Mapping[Any, str], per_shard: int, columns: Mapping[Any, list[str]], keyed: bool):
        self._folders = dict(folders)
        self._per_shard = per_shard
        self._columns = dict(columns)  # each key's table columns
        self._keyed = keyed
        self._parts: dict[Any, list[ShardRecord]] = {}  # the open part of each key

    def start_bundle(self):
        self._parts = {}

    def _close(self, key) -> dict[str, Any]:
        part = self._parts.pop(key)
        name = uuid.uuid4().hex
        base, token = fs.join(self._folders[key], f"{PART_PREFIX}{name}"), f"{SHARD_TOKEN}{name}"
        part.sort(key=lambda record: record.uid)  # stable
        with fs.create(base + ".tfrecord") as handle:
            for record in part:
                write_record(handle, record.example)
        rows = ({**record.row, "uid": record.uid} for record in part)
        fs.write_text(base + ".csv", format_table(rows, self._columns[key], shard=token))
        return {"key": key, "part": base, "examples": len(part), "first_uid": part[0].uid, "shard_token": token}

    def process(self, element):
        key, element = element if self._keyed else (None, element)
        for record in records_of(element):
            part = self._parts.setdefault(key, [])
            part.append(record)
            if len(part) >= self._per_shard:
                yield self._close(key)

    def finish_bundle(self):
        for key in list(self._parts):
            yield in_global_window(self._close(key))


def name_parts(parts: list[dict[str, Any]], keys: Sequence[Any] = (None,)) -> list[tuple[Any, Any, int, int]]:
    """(key, part, index, total) for every part, ordered by first uid within its key; ``(key, None, 0, 1)`` for
    a key with no part."""
    named = []
    for key in keys:
        ordered = sorted((p for p in parts if p["key"] == key), key=lambda p: (p["first_uid"], p["part"]))
        named += [(key, part, index, len(ordered)) for index, part in enumerate(ordered)] or [(key, None, 0, 1)]
    return named


class _FinalizePartFn(beam.DoFn):
    """Renames one part to its final shard name and writes its data table with the shard column."""

    def __init__(
        self,
        destinations: Mapping[Any, tuple[str, str]],
        columns: Mapping[Any, list[str]],
        counter_namespace: str,
        keyed: bool,
    ):
        self._destinations = dict(destinations)
        self._columns = dict(columns)
        self._keyed = keyed
        prefixes = {prefix for _, prefix in self._destinations.values()}
        self._shards = {p: Metrics.counter(counter_namespace, f"shards_written[{p}]") for p in prefixes}
        self._examples = {p: Metrics.counter(counter_namespace, f"examples_written[{p}]") for p in prefixes}

    def process(self, element):
        key, part, index, total = element
        written = self._finalize(key, part, index, total)
        yield (key, written) if self._keyed else written

    def _finalize(self, key, part, index, total) -> dict[str, Any]:
        folder, prefix = self._destinations[key]
        name = shard_name(prefix, index, total)
        final = fs.join(folder, name)
        table = fs.join(folder, table_name(index, total))
        if part is None:  # nothing to write: one empty shard keeps the NNNN-TOTAL sequence complete
            fs.write_bytes(final, b"")
            fs.write_text(table, format_table([], self._columns[key]))
            return {"shard": name, "examples": 0}
        fs.write_text(table, shard_table(fs.read_text(part["part"] + ".csv"), part, self._columns[key], name))
        if fs.exists(part["part"] + ".tfrecord"):  # a retried finalize finds it renamed already
            fs.rename_file(part["part"] + ".tfrecord", final)
        self._shards[prefix].inc()
        self._examples[prefix].inc(part["examples"])
        return {"shard": name, "examples": part["examples"]}


def _delete_parts(_, folders: Sequence[str]) -> None:
    """Removes part files left by retried bundles (their examples were written again by the retry)."""
    for folder in folders:
        fs.delete_files(fs.glob(fs.join(folder, f"{PART_PREFIX}*")))


class WriteShards(beam.PTransform):
    """Writes ``ShardRecord``s (or ``ShardBatch``es of them) to ``folder`` as numbered TFRecord shards plus data
    tables.

    Returns a PCollection with one ``{"shard", "examples"}`` dict per shard written (an empty input still
    gets one empty shard, so the NNNN-TOTAL sequence always exists).

    ``WriteShards.per_key(destinations, ...)`` writes ``(key, ShardRecord or ShardBatch)`` pairs instead, each
    key to its own ``(folder, prefix)`` as a separate WriteShards would (parts roll per key; every key gets its
    NNNN-TOTAL sequence), in one set of steps, and returns ``(key, {"shard", "examples"})`` pairs. Its
    ``extra_columns`` may be a mapping from each key to that key's table columns.
    """

    def __init__(
        self,
        folder: str,
        prefix: str,
        examples_per_shard: int,
        extra_columns: Sequence[str] | Mapping[Any, Sequence[str]] = (),
        counter_namespace: str = "sigforge",
        *,
        destinations: Mapping[Any, tuple[str, str]] | None = None,
    ):
        super().__init__()
        self._keyed = destinations is not None
        self._destinations = dict(destinations) if destinations is not None else {None: (folder, prefix)}
        self._per_shard = examples_per_shard
        per_key = (
            extra_columns if isinstance(extra_columns, Mapping) else dict.fromkeys(self._destinations, extra_columns)
        )
        self._columns = {key: with_base_columns(per_key[key]) for key in self._destinations}
        self._namespace = counter_namespace

    @classmethod
    def per_key(
        cls,
        destinations: Mapping[Any, tuple[str, str]],
        examples_per_shard: int,
        extra_columns: Sequence[str] | Mapping[Any, Sequence[str]] = (),
        counter_namespace: str = "sigforge",
    ) -> WriteShards:
        return cls("", "", examples_per_shard, extra_columns, counter_namespace, destinations=destinations)

    def expand(self, records):
        keys = list(self._destinations)
        folders = {key: folder for key, (folder, _) in self._destinations.items()}
        shards = (
            records
            | "WriteParts" >> beam.ParDo(_WritePartsFn(folders, self._per_shard, self._columns, self._keyed))
            | "ListParts" >> beam.combiners.ToList()
            | "NameParts" >> beam.FlatMap(name_parts, keys)
            | "SpreadParts" >> beam.Reshuffle()
            | "FinalizeParts"
            >> beam.ParDo(_FinalizePartFn(self._destinations, self._columns, self._namespace, self._keyed))
        )
        _ = (
            shards
            | "AllFinalized" >> beam.combiners.Count.Globally()
            | "DeleteLeftoverParts" >> beam.Map(_delete_parts, folders=sorted(set(folders.values())))
        )
        return shards
