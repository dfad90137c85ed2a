"""The audit's scan of one shard folder (``transforms/audit.py``): shard and data-table names and their
``NNNN-TOTAL`` sequences, every table row naming its own shard, records counted per shard (headers only, with the
length checksum) against the table rows; and the file API the audit reads through (:class:`FileAccess`).
"""

from __future__ import annotations

import csv
import io
import re
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from transforms.contract import BASE_COLUMNS
from transforms.tfrecord import masked_crc32c

_SHARD_RE = re.compile(r"^(?P<prefix>.+)_shard_(?P<index>\d{4,})-(?P<total>\d{4,})\.tfrecord$")
_TABLE_RE = re.compile(r"^data_tbl_(?P<index>\d{4,})-(?P<total>\d{4,})\.csv$")
MAX_LISTED = 20


class FileAccess(Protocol):
    """The file reads of the audit; the ``beam_pipelines.dataset.fs`` and ``transforms.gfile_io`` modules satisfy it.

    ``exists`` is true for a file and for a folder (on object stores: when any object lies below it);
    ``glob`` and ``list_tree`` (every file below a folder, recursively; none for a missing folder) return sorted
    paths; ``open_read`` returns a binary read handle usable as a context manager.
    """

    def join(self, base: str, *parts: str) -> str: ...
    def exists(self, path: str) -> bool: ...
    def glob(self, pattern: str) -> list[str]: ...
    def list_tree(self, folder: str) -> list[str]: ...
    def basename(self, path: str) -> str: ...
    def read_text(self, path: str) -> str: ...
    def read_bytes(self, path: str) -> bytes: ...
    def open_read(self, path: str) -> BinaryIO: ...


def default_fs(fs: FileAccess | None) -> FileAccess:
    if fs is not None:
        return fs
    from transforms import gfile_io  # imports TensorFlow: only when no other file access is given

    return gfile_io


@dataclass
class Row:
    """What the audit keeps of one data-table row."""

    uid: str
    target_id: str
    label: str
    group: str | None


@dataclass
class FolderScan:
    """One shard folder: its records, data-table rows, and the problems found in its files."""

    folder: str
    records: int = 0
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def count_records(path: str, fs: FileAccess | None = None) -> int:
    """Number of records in a TFRecord file, read header by header; raises ValueError on a damaged file."""
    count = 0
    with default_fs(fs).open_read(path) as handle:
        while True:
            header = handle.read(12)
            if not header:
                return count
            if len(header) < 12:
                raise ValueError(f"truncated record header after {count} records")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise ValueError(f"corrupt length of record {count + 1}")
            if len(handle.read(length + 4)) != length + 4:
                raise ValueError(f"record {count + 1} is truncated")
            count += 1


def check_sequence(numbers: Iterable[tuple[int, int]], what: str) -> list[str]:
    """Problems of a ``NNNN-TOTAL`` numbering: mixed totals, or indices other than exactly 1..TOTAL."""
    numbers = sorted(numbers)
    if not numbers:
        return [f"{what}: none found"]
    totals = sorted({total for _, total in numbers})
    if len(totals) > 1:
        return [f"{what}: mixed totals {totals} (files from different runs?)"]
    total = totals[0]
    indices = Counter(index for index, _ in numbers)
    missing = sorted(set(range(1, total + 1)) - set(indices))
    extra = sorted(i for i in indices if i < 1 or i > total)
    problems = []
    if missing:
        problems.append(f"{what}: sequence of {total} is incomplete, missing {_listed([f'{i:04d}' for i in missing])}")
    if extra:
        problems.append(f"{what}: indices {extra} are outside 1..{total}")
    return problems


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _read_table(fs: FileAccess, path: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(fs.read_text(path)))
    return list(reader.fieldnames or []), list(reader)


def scan_folder(fs: FileAccess, out: str, relative: str, prefix: str, group_column: str | None = None) -> FolderScan:
    """Checks one shard folder (names, sequences, table vs shard records) and collects its table rows."""
    folder = fs.join(out, relative)
    scan = FolderScan(relative)
    if not fs.exists(folder):
        scan.problems.append(f"{relative}: folder is missing")
        return scan
    shards, tables = {}, {}
    for path in fs.list_tree(folder):
        base = folder.rstrip("/") + "/"
        name = path[len(base) :] if path.startswith(base) else fs.basename(path)
        shard, table = _SHARD_RE.match(name), _TABLE_RE.match(name)
        if shard and shard["prefix"] == prefix:
            shards[(int(shard["index"]), int(shard["total"]))] = path
        elif table:
            tables[(int(table["index"]), int(table["total"]))] = path
        elif not name.startswith("_"):
            scan.problems.append(f"{relative}: unexpected file {name} (expected {prefix}_shard_NNNN-TOTAL.tfrecord)")
    scan.problems += check_sequence(shards, f"{relative}: {prefix} shards")
    scan.problems += check_sequence(tables, f"{relative}: data tables")
    for number in sorted(set(shards) - set(tables)):
        scan.problems.append(f"{relative}: {fs.basename(shards[number])} has no data table data_tbl_{_nt(number)}.csv")
    for number in sorted(set(tables) - set(shards)):
        scan.problems.append(f"{relative}: {fs.basename(tables[number])} has no shard {prefix}_shard_{_nt(number)}")
    rows_per_shard: Counter[str] = Counter()
    for number, path in sorted(tables.items()):
        _scan_table(fs, scan, path, f"{prefix}_shard_{_nt(number)}.tfrecord", group_column, rows_per_shard)
    for _number, path in sorted(shards.items()):
        name = fs.basename(path)
        try:
            records = count_records(path, fs)
        except ValueError as error:
            scan.problems.append(f"{relative}: {name} is not a valid TFRecord file: {error}")
            continue
        scan.records += records
        if records != rows_per_shard[name]:
            scan.problems.append(
                f"{relative}: {name} has {records} records but the data tables list {rows_per_shard[name]} rows"
            )
    return scan


def _nt(number: tuple[int, int]) -> str:
    return f"{number[0]:04d}-{number[1]:04d}"


def _scan_table(
    fs: FileAccess, scan: FolderScan, path: str, shard: str, group_column: str | None, rows_per_shard: Counter
) -> None:
    name = fs.basename(path)
    columns, rows = _read_table(fs, path)
    missing = [c for c in BASE_COLUMNS if c not in columns]
    if missing:
        scan.problems.append(f"{scan.folder}: {name} lacks the columns {missing} (has {columns})")
        return
    if group_column is not None and group_column not in columns:
        scan.problems.append(f"{scan.folder}: {name} has no group column '{group_column}' (columns: {columns})")
        group_column = None
    wrong = [r["uid"] for r in rows if r["shard"] != shard]
    if wrong:
        scan.problems.append(f"{scan.folder}: {name} lists {len(wrong)} rows of another shard than {shard}")
    for row in rows:
        rows_per_shard[row["shard"]] += 1
        group = row.get(group_column, "").strip() if group_column else None
        scan.rows.append(Row(row["uid"], row["target_id"], row["label"], group or None))
