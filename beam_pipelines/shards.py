"""Sharded TFRecord + data-table writer shared by every stage.

Shard files follow the seed naming, 1-based with the total: ``{prefix}_shard_0001-0016.tfrecord`` beside
``data_tbl_0001-0016.csv``. No shard holds more than ``examples_per_shard`` examples.

Writing follows Beam's own file sinks with runner-chosen sharding: each bundle collects its examples into parts
of at most ``examples_per_shard`` examples (the only examples held in memory), and writes each part once, in uid
order, as a temporary part file when it is full or the bundle ends; no example is shuffled. A finalize step then
sees only the list of parts (one small dict per part), orders them by their first uid, and renames each to its
final ``NNNN-TOTAL`` name, putting the shard name into its data table.
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

from beam_pipelines import fs
from transforms import csv_rows
from transforms.contract import (
    BASE_COLUMNS,
    TABLE_PATTERN,
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
    """The lines after the header of a text file, as bytes (``csv_rows.data_lines``: split like Beam's text
    source, so the build and the audit's recount see the same rows)."""
    with fs.open_read(path) as handle:
        return csv_rows.data_lines(handle.read())


def read_table_lines(path: str) -> list[str]:
    """The data lines of one data-table CSV (header skipped), decoded."""
    return [line.decode("utf-8") for line in data_lines(path)]


class ReadWholeFiles(beam.PTransform):
    """Files matching ``pattern`` (listed and sorted on the driver; a single path is taken literally; a list of
    patterns reads the sorted matches of each, in list order) -> ``read(path)``'s elements (default: TFRecord
    records), each file read whole by one worker.

    Used instead of Beam's splittable TFRecord/text sources: with the multi-threaded FnApiRunner an analyze pass
    lost train records right after the TFRecord source (3176 of 3180, issue #13), and a shard is small, so
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


class ParseTableLineFn(beam.DoFn):
    """One data-table CSV line (header known) -> ``(uid, row)`` without the ``shard`` column."""

    def __init__(self, header: list[str]):
        self._header = header

    def process(self, line: str):
        row = parse_table_line(self._header, line)
        yield row["uid"], row


def parse_table_line(header: Sequence[str], line: str) -> dict[str, str]:
    """One data-table CSV line (``header`` its table's columns) -> its row without the ``shard`` column."""
    row = dict(zip(header, next(csv.reader([line])), strict=False))
    row.pop("shard", None)
    return row


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], shard: str | None = None) -> str:
    """A CSV table: a header of ``columns``, then one line per row of its values in those columns (a missing or
    None value is empty, other keys are left out; ``shard`` given: the ``shard`` column holds it in every row).
    Lines end in ``\n``."""
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    if shard is None:
        writer.writerows([("" if (value := row.get(k)) is None else value) for k in columns] for row in rows)
    else:
        writer.writerows(
            [shard if k == "shard" else ("" if (value := row.get(k)) is None else value) for k in columns]
            for row in rows
        )
    return buffer.getvalue()


def format_row(row: dict[str, Any], columns: Sequence[str]) -> str:
    """One data line of ``format_table([row], columns)``, without the header and the line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([("" if (value := row.get(k)) is None else value) for k in columns])
    return buffer.getvalue()


PART_PREFIX = "_part-"
SHARD_TOKEN = "sigforge-shard-"  # + the part's uuid: the shard column of a part's table, until finalize


class _WritePartsFn(beam.DoFn):
    """Collects ShardRecords (alone or in ShardBatches) into parts of at most ``per_shard`` examples, each written
    in uid order when full (or at the bundle's end) as a part file plus its table; yields one dict per part. A
    part is held in memory until then (at most ``per_shard`` serialized examples), so the order in which a bundle
    delivered them (which varies between runs) never reaches the bytes, and finalize only renames the file.

    The part's table is the shard's table already (rows in the same uid order, every column), but for the shard
    column, which holds a token unique to the part (``shard_token`` in the part's dict): finalize replaces it
    with the shard's name."""

    def __init__(self, folder: str, per_shard: int, columns: Sequence[str]):
        self._folder = folder
        self._per_shard = per_shard
        self._columns = list(columns)
        self._records: list[tuple[str, bytes]] = []
        self._rows: list[dict[str, Any]] = []

    def start_bundle(self):
        self._records, self._rows = [], []

    def _close(self) -> dict[str, Any]:
        name = uuid.uuid4().hex
        base, token = fs.join(self._folder, f"{PART_PREFIX}{name}"), f"{SHARD_TOKEN}{name}"
        self._records.sort(key=lambda pair: pair[0])
        with fs.create(base + ".tfrecord") as handle:
            for _, example in self._records:
                write_record(handle, example)
        self._rows.sort(key=lambda row: row["uid"])  # stable, as the records: row i describes record i
        fs.write_text(base + ".csv", format_table(self._rows, self._columns, shard=token))
        part = {"part": base, "examples": len(self._rows), "first_uid": self._records[0][0], "shard_token": token}
        self._records, self._rows = [], []
        return part

    def process(self, element: ShardRecord | ShardBatch):
        for record in records_of(element):
            self._records.append((record.uid, record.example))
            self._rows.append({**record.row, "uid": record.uid})
            if len(self._rows) >= self._per_shard:
                yield self._close()

    def finish_bundle(self):
        if self._rows:
            yield WindowedValue(self._close(), MIN_TIMESTAMP, [GlobalWindow()])


def name_parts(parts: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, int]]:
    """(part, index, total) for every part, ordered by first uid; ``[(None, 0, 1)]`` when there is none."""
    if not parts:
        return [(None, 0, 1)]
    ordered = sorted(parts, key=lambda p: (p["first_uid"], p["part"]))
    return [(part, index, len(ordered)) for index, part in enumerate(ordered)]


class _FinalizePartFn(beam.DoFn):
    """Renames one part to its final shard name and writes its data table with the shard column."""

    def __init__(self, folder: str, prefix: str, columns: Sequence[str], counter_namespace: str):
        self._folder = folder
        self._prefix = prefix
        self._columns = list(columns)
        self._shards = Metrics.counter(counter_namespace, f"shards_written[{prefix}]")
        self._examples = Metrics.counter(counter_namespace, f"examples_written[{prefix}]")

    def process(self, element):
        part, index, total = element
        name = shard_name(self._prefix, index, total)
        final = fs.join(self._folder, name)
        table = fs.join(self._folder, table_name(index, total))
        if part is None:  # nothing to write: one empty shard keeps the NNNN-TOTAL sequence complete
            fs.write_bytes(final, b"")
            fs.write_text(table, format_table([], self._columns))
            yield {"shard": name, "examples": 0}
            return
        fs.write_text(table, shard_table(fs.read_text(part["part"] + ".csv"), part, self._columns, name))
        if fs.exists(part["part"] + ".tfrecord"):  # a retried finalize finds it renamed already
            fs.rename_file(part["part"] + ".tfrecord", final)
        self._shards.inc()
        self._examples.inc(part["examples"])
        yield {"shard": name, "examples": part["examples"]}


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


def _delete_parts(_, folder: str) -> None:
    """Removes part files left by retried bundles (their examples were written again by the retry)."""
    fs.delete_files(fs.glob(fs.join(folder, f"{PART_PREFIX}*")))


class WriteShards(beam.PTransform):
    """Writes ``ShardRecord``s (or ``ShardBatch``es of them) to ``folder`` as numbered TFRecord shards plus data
    tables.

    Returns a PCollection with one ``{"shard", "examples"}`` dict per shard written (an empty input still
    gets one empty shard, so the NNNN-TOTAL sequence always exists).
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
        folder = self._folder
        shards = (
            records
            | "WriteParts" >> beam.ParDo(_WritePartsFn(folder, self._per_shard, self._columns))
            | "ListParts" >> beam.combiners.ToList()
            | "NameParts" >> beam.FlatMap(name_parts)
            | "SpreadParts" >> beam.Reshuffle()
            | "FinalizeParts" >> beam.ParDo(_FinalizePartFn(folder, self._prefix, self._columns, self._namespace))
        )
        _ = (
            shards
            | "AllFinalized" >> beam.combiners.Count.Globally()
            | "DeleteLeftoverParts" >> beam.Map(_delete_parts, folder=folder)
        )
        return shards


def _placements(placed: tuple[str, dict[str, Any]]):
    """((folder, uid), shard name) for every row of a written shard's data table; ``placed`` is (folder, shard)."""
    folder, shard = placed
    for row in read_table(fs.join(folder, table_name_of(shard["shard"]))):
        yield (folder, row["uid"]), shard["shard"]


def table_name_of(shard: str) -> str:
    return fs.basename(table_for_shard(shard))


def _row_for_shard(element):
    (folder, uid), grouped = element
    rows = list(grouped["row"])
    for shard in grouped["shard"]:
        yield (folder, shard), {**(rows[0] if rows else {}), "uid": uid, "shard": shard}


class _RewriteTableFn(beam.DoFn):
    def __init__(self, columns: Mapping[str, Sequence[str]]):
        self._columns = {folder: list(names) for folder, names in columns.items()}

    def process(self, element):
        (folder, shard), rows = element
        path = fs.join(folder, table_name_of(shard))
        written = read_table(path)
        by_uid = {row["uid"]: row for row in rows}
        merged = [{**by_uid.get(row["uid"], {}), **{k: row[k] for k in BASE_COLUMNS}} for row in written]
        fs.write_text(path, format_table(merged, self._columns[folder]))
        yield shard


class EnrichTables(beam.PTransform):
    """Adds recipe columns to the data tables that WriteShards wrote, in one or more folders, from table rows.

    Inputs ``(shards, rows)``: ``(folder, shard)`` for every shard written (``shard``: a WriteShards output) and
    ``((folder, uid), row)`` rows; ``extra_columns`` maps every folder to its table's columns. A row joins the
    placements of its uid in its own folder only, so one join serves several folders (normalize: the three
    splits) as separate joins per folder would. Used where examples come out of a step that cannot carry table
    rows (tf.Transform): only the small rows and (uid, shard) placements are shuffled, never the examples. Row
    order and the base columns (uid, target_id, label, shard) stay as written.
    """

    def __init__(self, extra_columns: Mapping[str, Sequence[str]]):
        super().__init__()
        self._columns = {
            folder: list(BASE_COLUMNS) + [c for c in names if c not in BASE_COLUMNS]
            for folder, names in extra_columns.items()
        }

    def expand(self, inputs):
        shards, rows = inputs
        placed = shards | "ReadPlacements" >> beam.FlatMap(_placements)
        return (
            {"shard": placed, "row": rows}
            | "JoinRowsByUid" >> beam.CoGroupByKey()
            | "RowsPerShard" >> beam.FlatMap(_row_for_shard)
            | "GroupByShard" >> beam.GroupByKey()
            | "RewriteTables" >> beam.ParDo(_RewriteTableFn(self._columns))
        )
