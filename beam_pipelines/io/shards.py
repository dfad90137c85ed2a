"""Sharded TFRecord + data-table writer shared by every stage.

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

import csv
import io
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from beam_pipelines.dataset import fs
from transforms import csv_rows
from transforms.contract import (
    BASE_COLUMNS,
    TABLE_PATTERN,
    example_keys,
    shard_name,
    shard_pattern,
    table_name,
    table_name_for_shard,
)
from transforms.tfrecord import iter_records, write_record


class ShardRecord(NamedTuple):
    """One example on its way to a shard: its serialized tf.Example and its data-table row."""

    uid: str
    example: bytes
    row: dict[str, Any]


class ShardBatch(NamedTuple):
    """Several ShardRecords as one element (e.g. all examples of one star): ``WriteShards`` writes them in order,
    exactly as if each had been its own element, and counts (``counting.weight``) see ``len(records)``. One
    element per batch instead of one per example spares every step that follows its per-element overhead."""

    records: tuple[ShardRecord, ...]


def records_of(element: ShardRecord | ShardBatch) -> Sequence[ShardRecord]:
    """The ShardRecords an element of a records collection carries: a batch's records, or the record itself."""
    return element.records if isinstance(element, ShardBatch) else (element,)


def table_for_shard(shard_path: str) -> str:
    """``.../{prefix}_shard_0003-0016.tfrecord`` -> ``.../data_tbl_0003-0016.csv`` (docs/ARCHITECTURE.md section 3)."""
    return fs.join(shard_path.rsplit("/", 1)[0], table_name_for_shard(shard_path))


def read_table(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(fs.read_text(path))))


def shard_glob(folder: str, prefix: str) -> str:
    return fs.join(folder, shard_pattern(prefix))


def table_glob(folder: str) -> str:
    return fs.join(folder, TABLE_PATTERN)


def table_columns(folder: str) -> list[str]:
    paths = fs.glob(table_glob(folder))
    if not paths:
        return []
    with fs.open_read(paths[0]) as handle:
        return next(csv.reader([handle.readline().decode("utf-8")]))


def read_records(path: str) -> Iterable[bytes]:
    """Every record of one TFRecord file, in file order."""
    with fs.open_read(path) as handle:
        yield from iter_records(handle)


def data_lines(path: str) -> list[bytes]:
    """The records after the header of a CSV file, as bytes (``csv_rows.data_lines``: RFC 4180 records, a quoted
    field may hold newlines; so the build and the audit's recount see the same rows)."""
    with fs.open_read(path) as handle:
        return csv_rows.data_lines(handle.read())


def read_table_lines(path: str) -> list[str]:
    """The data records of one data-table CSV (header skipped), decoded (a cell may hold a newline)."""
    return [line.decode("utf-8") for line in data_lines(path)]


def basename_of_folder(path: str) -> str:
    """``.../split/train/train_shard_0001-0013.tfrecord`` -> ``train``."""
    return fs.basename(path.rsplit("/", 1)[0])


def _by_folder(path: str, items: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    """``(name of the folder of the file at path, item)`` for every item read from it: ``(split, item)`` for a
    file under ``split/{split}/``."""
    folder = basename_of_folder(path)
    for item in items:
        yield folder, item


def read_records_by_folder(path: str) -> Iterable[tuple[str, bytes]]:
    """``(name of the file's folder, record)`` for every record of one TFRecord file: ``(split, record)`` for a
    ``split/{split}/`` shard."""
    return _by_folder(path, read_records(path))


def read_shard_with_table(shard_path: str) -> Iterable[ShardRecord]:
    """A ShardRecord per example of one shard, with its row from the shard's own data table (without the shard
    column; uid, target_id and label as the example holds them).

    Reading a shard together with its table joins examples and rows without shuffling any example; memory is
    bounded by one shard's table."""
    rows = {row["uid"]: row for row in read_table(table_for_shard(shard_path))}
    for serialized in read_records(shard_path):
        uid, target_id, label = example_keys(serialized)
        row = {k: v for k, v in rows.get(uid, {}).items() if k != "shard"}
        yield ShardRecord(uid, serialized, {**row, "uid": uid, "target_id": target_id, "label": label})


def read_shard_with_table_by_folder(path: str) -> Iterable[tuple[str, ShardRecord]]:
    """``(name of the file's folder, ShardRecord)`` for every example of one shard, with its data-table row
    (``read_shard_with_table``): ``(split, record)`` for a ``split/{split}/`` shard."""
    return _by_folder(path, read_shard_with_table(path))


def read_table_lines_by_folder(path: str) -> Iterable[tuple[str, str]]:
    """``(name of the file's folder, line)`` for every data line of one data-table CSV."""
    return _by_folder(path, read_table_lines(path))


class ReadWholeFiles(beam.PTransform):
    """Files matching ``pattern`` (listed and sorted on the driver; a single path is taken literally; a list of
    patterns reads the sorted matches of each, in list order) -> ``read(path)``'s elements (default: TFRecord
    records), each file read whole by one worker.

    Used instead of Beam's splittable TFRecord/text sources: with the multi-threaded FnApiRunner an analyze pass
    lost train records right after the TFRecord source (3176 of 3180), and a shard is small, so
    reading file by file loses no parallelism that matters. Files are spread over workers by a Reshuffle after
    a ``beam.Create`` without its own reshuffle (``Create``'s built-in one made which examples share a shard
    vary between reruns in one process: tests/test_determinism.py failed 4 of 12 runs), and the sorted
    list keeps the order (and so the bytes of a rerun) independent of directory listing order."""

    def __init__(self, pattern: str | Sequence[str], read=None, literal: bool = False):
        super().__init__()
        self._pattern = pattern
        self._read = read
        self._literal = literal

    def expand(self, pipeline):
        read = self._read or read_records
        patterns = [self._pattern] if isinstance(self._pattern, str) else list(self._pattern)
        paths = patterns if self._literal else [path for pattern in patterns for path in sorted(fs.glob(pattern))]
        return (
            pipeline
            | "ListFiles" >> beam.Create(paths, reshuffle=False).with_output_types(str)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.FlatMap(read)
        )


def parse_table_line(header: Sequence[str], line: str) -> dict[str, str]:
    """One data-table CSV line (``header`` its table's columns) -> its row without the ``shard`` column."""
    row = dict(zip(header, next(csv.reader([line])), strict=False))
    row.pop("shard", None)
    return row


def _keyed_table_row(pair: tuple[str, str], headers: Mapping[str, Sequence[str]]) -> tuple[tuple[str, str], dict]:
    """``(folder name, data-table line)`` (as ``read_table_lines_by_folder`` reads them) -> ``((name, uid), row)``."""
    name, line = pair
    row = parse_table_line(headers[name], line)
    return (name, row["uid"]), row


class ReadTableRowsByFolder(beam.PTransform):
    """The data-table rows of several folders as ``((name, uid), row)`` without the shard column: ``folders`` maps
    each name (the folder's own name, e.g. a split under ``split/`` or ``norm/``) to its folder, ``headers`` to its
    tables' columns. Applied to the pipeline."""

    def __init__(self, folders: Mapping[str, str], headers: Mapping[str, Sequence[str]]):
        super().__init__()
        self._folders = dict(folders)
        self._headers = dict(headers)

    def expand(self, pipeline):
        patterns = [table_glob(folder) for folder in self._folders.values()]
        return (
            pipeline
            | "ReadDataTables" >> ReadWholeFiles(patterns, read_table_lines_by_folder)
            | "ParseDataTables" >> beam.Map(_keyed_table_row, self._headers)
        )


def with_base_columns(extra: Sequence[str]) -> list[str]:
    """A data table's columns: ``BASE_COLUMNS`` first, then ``extra`` without them."""
    return list(BASE_COLUMNS) + [c for c in extra if c not in BASE_COLUMNS]


def _cells(row: dict[str, Any], columns: Sequence[str], shard: str | None = None) -> list[Any]:
    """A row's values in ``columns`` (a missing or None value empty; ``shard`` given: it fills the shard column)."""
    return [shard if shard is not None and k == "shard" else ("" if (v := row.get(k)) is None else v) for k in columns]


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], shard: str | None = None) -> str:
    """A CSV table: a header of ``columns``, then one line per row of its values in those columns (a missing or
    None value is empty, other keys are left out; ``shard`` given: the ``shard`` column holds it in every row).
    Lines end in ``\n``."""
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(_cells(row, columns, shard) for row in rows)
    return buffer.getvalue()


def format_row(row: dict[str, Any], columns: Sequence[str]) -> str:
    """One data line of ``format_table([row], columns)``, without the header and the line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(_cells(row, columns))
    return buffer.getvalue()


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


def shard_table(part_csv: str, part: dict[str, Any], columns: Sequence[str], shard: str) -> str:
    """The data table of the shard named ``shard`` from its part's table: the part's shard token replaced by the
    name, when the name is written as it is in CSV and the token occurs once per row (so nowhere else); else the
    part's rows parsed, sorted and written again (``sorted_part_table``)."""
    token = part.get("shard_token")
    if token and format_row({"shard": shard}, ["shard"]) == shard and part_csv.count(token) == part["examples"]:
        return part_csv.replace(token, shard)
    return sorted_part_table(part_csv, columns, shard)


def sorted_part_table(part_csv: str, columns: Sequence[str], shard: str) -> str:
    """The shard's data table from its part's CSV: the part's rows in uid order (stable), in ``columns``, with
    ``shard`` in the shard column; a column the part lacks is empty.

    The same text as ``format_table`` of the rows ``csv.DictReader`` reads (blank lines skipped, a short row's
    missing values empty), sorted by uid, each with ``"shard": shard``; the CSV is parsed once, into lists."""
    header, *rows = csv.reader(io.StringIO(part_csv))
    rows = [row for row in rows if row]
    at_uid = header.index("uid")
    at = [header.index(c) if c in header else None for c in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in sorted(rows, key=lambda row: row[at_uid]):
        writer.writerow(
            [
                shard if c == "shard" else ("" if i is None or i >= len(row) else row[i])
                for c, i in zip(columns, at, strict=True)
            ]
        )
    return buffer.getvalue()


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
