"""Reading shards and data tables: a file's records or data lines, a shard joined with its own table, each item
tagged with its folder's name (``_by_folder``: ``(split, item)`` under ``split/{split}/``), and the whole-file
Beam reads every stage uses (``ReadWholeFiles``, ``ReadTableRowsByFolder``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.tables import parse_table_line, read_table, table_for_shard, table_glob
from beam_pipelines.runtime import dry_run
from transforms import csv_rows
from transforms.contract import example_keys, shard_pattern
from transforms.tfrecord import iter_records


def shard_glob(folder: str, prefix: str) -> str:
    return fs.join(folder, shard_pattern(prefix))


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
    vary between reruns in one process: tests/e2e/test_determinism.py failed 4 of 12 runs), and the sorted
    list keeps the order (and so the bytes of a rerun) independent of directory listing order."""

    def __init__(self, pattern: str | Sequence[str], read=None, literal: bool = False):
        super().__init__()
        self._pattern = pattern
        self._read = read
        self._literal = literal

    def expand(self, pipeline):
        read = self._read or read_records
        patterns = [self._pattern] if isinstance(self._pattern, str) else list(self._pattern)
        # In a dry run the patterns stand in for the files they would match (nothing is listed or read).
        listed = self._literal or dry_run.active() is not None
        paths = patterns if listed else [path for pattern in patterns for path in sorted(fs.glob(pattern))]
        return (
            pipeline
            | "ListFiles" >> beam.Create(paths, reshuffle=False).with_output_types(str)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.FlatMap(read)
        )


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
