"""The dataset audit: checks a dataset folder against the contract (docs/ARCHITECTURE.md sections 3 and 5).

``audit_dataset(out)`` returns human-readable problems (an empty list means clean). Only stages recorded in the
manifest are audited; the others are skipped (logged at INFO). For each audited stage it checks:

- accounting: ``seen == written + rejected`` and ``rejected == sum(rejected_by_reason)``; the rows of
  ``OUT/rejected/<stage>.csv`` match ``rejected``; a stage sees exactly what the previous one wrote
  (split <- build, normalize <- split, filter <- normalize);
- files: every shard folder holds a complete ``NNNN-TOTAL`` sequence of shards and the data tables with the same
  numbers, every table row names its own shard, and no other files;
- counts: TFRecord records are counted in every shard (record headers only, with the length checksum) and must
  equal that shard's data-table rows and the manifest's counts (build: written; split/normalize/filter: per
  split examples); normalized and split shards hold the same number of records per split;
- uniqueness: no uid appears twice within a stage (across all its splits);
- leakage: no target_id (and, with ``group_column``, no value of that data-table column, e.g. ``source_id``)
  appears in two splits of the split, normalize or filter stage;
- statistics (analyze): every array in ``OUT/stats/*.npz`` is finite, every ``*std`` positive;
- records (``transforms/audit_values.py``): every record of every shard is read and must carry the (uid,
  target_id, label) its data table lists; normalized values are finite and the train split not collapsed.

Uids, targets and groups come from the data tables (one small row per example), which are themselves checked
against the records. All file access goes through an injected ``fs``
(:class:`FileAccess`): ``sigforge audit`` passes ``beam_pipelines.dataset.fs`` (Beam), the trainer the default
``transforms.gfile_io`` (``tf.io.gfile``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from transforms.audit_inputs import check_inputs_accounted
from transforms.audit_values import check_folder_records, check_stats, in_process
from transforms.contract import (
    BASE_COLUMNS,
    FILTERED_DIR,
    MANIFEST,
    NORM_DIR,
    RAW_DIR,
    RAW_PREFIX,
    REJECTED_DIR,
    SPLIT_DIR,
    SPLITS,
    STAGE_OUTPUTS,
    STAGES,
    norm_prefix,
    split_prefix,
)
from transforms.tfrecord import masked_crc32c

_LOG = logging.getLogger(__name__)

_SHARD_RE = re.compile(r"^(?P<prefix>.+)_shard_(?P<index>\d{4,})-(?P<total>\d{4,})\.tfrecord$")
_TABLE_RE = re.compile(r"^data_tbl_(?P<index>\d{4,})-(?P<total>\d{4,})\.csv$")
_MAX_LISTED = 20
# Stages whose output is one shard folder per split, the folder and the shard prefix of each.
_SPLIT_STAGES = {
    "split": (SPLIT_DIR, split_prefix),
    "normalize": (NORM_DIR, norm_prefix),
    "filter": (FILTERED_DIR, norm_prefix),
}
# Which stage's output each stage reads, for the "sees what the previous one wrote" check.
_PREVIOUS = {"split": "build", "normalize": "split", "filter": "normalize"}
_REJECTED_CSV = {s: rel for s, outs in STAGE_OUTPUTS.items() for rel in outs if rel.startswith(f"{REJECTED_DIR}/")}


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


def _default_fs(fs: FileAccess | None) -> FileAccess:
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
    with _default_fs(fs).open_read(path) as handle:
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
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


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


def duplicate_uids(stage: str, scans: dict[str, FolderScan]) -> list[str]:
    """Uids listed more than once in a stage's data tables (within or across its folders)."""
    where: dict[str, list[str]] = defaultdict(list)
    for scan in scans.values():
        for row in scan.rows:
            where[row.uid].append(scan.folder)
    duplicated = sorted(uid for uid, folders in where.items() if len(folders) > 1)
    problems = [
        f"{stage}: uid '{uid}' appears {len(where[uid])} times ({', '.join(where[uid])})"
        for uid in duplicated[:_MAX_LISTED]
    ]
    if len(duplicated) > _MAX_LISTED:
        problems.append(f"{stage}: {len(duplicated)} duplicated uids in all ({_MAX_LISTED} listed)")
    return problems


def split_leaks(stage: str, scans: dict[str, FolderScan], key: str) -> list[str]:
    """Values of ``key`` (``target_id`` or the group column) found in more than one split of a stage."""
    per_split: dict[str, Counter[str]] = defaultdict(Counter)
    for split, scan in scans.items():
        for row in scan.rows:
            value = row.target_id if key == "target_id" else row.group
            if value is not None:
                per_split[value][split] += 1
    leaked = sorted(v for v, splits in per_split.items() if len(splits) > 1)
    problems = [
        f"{stage}: {key} '{value}' is in more than one split: "
        + ", ".join(f"{s} ({n} examples)" for s, n in sorted(per_split[value].items()))
        for value in leaked[:_MAX_LISTED]
    ]
    if len(leaked) > _MAX_LISTED:
        problems.append(f"{stage}: {len(leaked)} {key} values in more than one split ({_MAX_LISTED} listed)")
    return problems


def check_accounting(stage: str, entry: dict[str, Any]) -> list[str]:
    """seen = written + rejected, and rejected = sum of rejected_by_reason, where the entry has those keys."""
    problems = []
    if all(k in entry for k in ("seen", "written", "rejected")):
        seen, written, rejected = entry["seen"], entry["written"], entry["rejected"]
        if seen != written + rejected:
            problems.append(
                f"{stage}: seen ({seen}) != written ({written}) + rejected ({rejected}): "
                f"{seen - written - rejected} inputs unaccounted for"
            )
    else:
        _LOG.info("audit: stage %s records no seen/written/rejected counts; accounting not checked", stage)
    by_reason = entry.get("rejected_by_reason")
    if isinstance(by_reason, dict) and "rejected" in entry and sum(by_reason.values()) != entry["rejected"]:
        problems.append(
            f"{stage}: rejected ({entry['rejected']}) != sum of rejected_by_reason ({sum(by_reason.values())})"
        )
    return problems


def check_rejected_csv(fs: FileAccess, out: str, stage: str, entry: dict[str, Any]) -> list[str]:
    relative = _REJECTED_CSV.get(stage)
    if relative is None or "rejected" not in entry:
        return []
    path = fs.join(out, relative)
    if not fs.exists(path):
        return [f"{stage}: {relative} is missing (the manifest records {entry['rejected']} rejections)"]
    rows = list(csv.DictReader(io.StringIO(fs.read_text(path))))
    if len(rows) != entry["rejected"]:
        return [f"{stage}: {relative} has {len(rows)} rows but the manifest records {entry['rejected']} rejections"]
    return []


def _split_names(entry: dict[str, Any]) -> list[str]:
    splits = entry.get("splits")
    return list(splits) if isinstance(splits, dict) and splits else list(SPLITS)


def _check_split_counts(stage: str, entry: dict[str, Any], scans: dict[str, FolderScan]) -> list[str]:
    problems = []
    splits = entry.get("splits") if isinstance(entry.get("splits"), dict) else {}
    for split, scan in scans.items():
        expected = (splits.get(split) or {}).get("examples")
        if expected is None:
            problems.append(f"{stage}: the manifest has no example count for split '{split}'")
        elif expected != scan.records:
            problems.append(
                f"{stage}: {scan.folder} has {scan.records} records but the manifest says {expected} examples"
            )
    if "written" in entry and splits:
        total = sum((s or {}).get("examples", 0) for s in splits.values())
        if total != entry["written"]:
            problems.append(f"{stage}: written ({entry['written']}) != sum of per-split examples ({total})")
    return problems


def _check_split_tables(stage: str, entry: dict[str, Any], scans: dict[str, FolderScan]) -> list[str]:
    """Per-split distinct targets and examples per label in the manifest against the data tables."""
    problems = []
    for split, scan in scans.items():
        info = (entry.get("splits") or {}).get(split) or {}
        targets = len({row.target_id for row in scan.rows})
        if "targets" in info and info["targets"] != targets:
            problems.append(
                f"{stage}: {scan.folder} data tables have {targets} distinct targets, the manifest {info['targets']}"
            )
        labels = dict(sorted(Counter(row.label for row in scan.rows).items()))
        if "labels" in info and {str(k): v for k, v in info["labels"].items()} != labels:
            problems.append(
                f"{stage}: {scan.folder} data tables have examples per label {labels}, the manifest {info['labels']}"
            )
    return problems


def _check_chain(stage: str, entry: dict[str, Any], stages: dict[str, Any], scans, previous_scans) -> list[str]:
    """A stage sees what the previous stage wrote: in total, and per split (normalize is 1:1 with split)."""
    problems = []
    previous = _PREVIOUS.get(stage)
    if previous is None or previous not in stages:
        return problems
    written = stages[previous].get("written")
    if "seen" in entry and written is not None and entry["seen"] != written:
        problems.append(f"{stage}: seen ({entry['seen']}) != {previous} written ({written})")
    splits = entry.get("splits") if isinstance(entry.get("splits"), dict) else {}
    for split, scan in scans.items():
        source = (previous_scans or {}).get(split)
        if source is None:
            continue
        if stage == "normalize" and source.records != scan.records:
            problems.append(
                f"normalize: {scan.folder} has {scan.records} records but {source.folder} has {source.records}"
            )
        seen = (splits.get(split) or {}).get("seen")
        if seen is not None and seen != source.records:
            problems.append(f"{stage}: split '{split}' saw {seen} examples but {source.folder} has {source.records}")
    return problems


def read_manifest(fs: FileAccess, out: str) -> dict[str, Any]:
    """``OUT/manifest.json``, or ``{"stages": {}}`` when there is none."""
    path = fs.join(out, MANIFEST)
    if not fs.exists(path):
        return {"stages": {}}
    return json.loads(fs.read_text(path))


def audit_dataset(
    out: str, group_column: str | None = None, fs: FileAccess | None = None, scanner=in_process
) -> list[str]:
    """All contract problems of the dataset folder ``out`` (empty when clean); see the module docstring.

    ``fs`` reads the files (default: ``transforms.gfile_io``, i.e. ``tf.io.gfile``); ``scanner(paths, fs)`` reads
    shards record by record (``audit_values.in_process``, or a Beam pipeline from ``sigforge audit --beam``).
    """
    fs = _default_fs(fs)
    data = read_manifest(fs, out)
    stages = data.get("stages", {})
    if not stages:
        return [f"{out}: no {MANIFEST} with completed stages (not a sigforge dataset folder?)"]
    problems: list[str] = []
    scans_by_stage: dict[str, dict[str, FolderScan]] = {}
    for stage in STAGES:
        entry = stages.get(stage)
        if entry is None:
            _LOG.info("audit: stage %s has not run on %s; skipped", stage, out)
            continue
        problems += check_accounting(stage, entry)
        problems += check_rejected_csv(fs, out, stage, entry)
        if stage == "analyze":
            problems += check_stats(fs, out)
            continue
        if stage == "build":
            scans = {RAW_PREFIX: scan_folder(fs, out, RAW_DIR, RAW_PREFIX)}
            problems += check_folder_records(fs, out, stage, RAW_DIR, RAW_PREFIX, "", scanner)
            problems += check_inputs_accounted(fs, out, data, (row.uid for row in scans[RAW_PREFIX].rows))
            if "written" in entry and entry["written"] != scans[RAW_PREFIX].records:
                problems.append(
                    f"build: {RAW_DIR}/ has {scans[RAW_PREFIX].records} records but the manifest says "
                    f"written={entry['written']}"
                )
        else:
            root, prefix = _SPLIT_STAGES[stage]
            scans = {
                split: scan_folder(fs, out, f"{root}/{split}", prefix(split), group_column)
                for split in _split_names(entry)
            }
            for split in scans:
                problems += check_folder_records(fs, out, stage, f"{root}/{split}", prefix(split), split, scanner)
            problems += _check_split_counts(stage, entry, scans)
            problems += _check_split_tables(stage, entry, scans)
            problems += split_leaks(stage, scans, "target_id")
            if group_column is not None:
                problems += split_leaks(stage, scans, group_column)
        for scan in scans.values():
            problems += scan.problems
        problems += duplicate_uids(stage, scans)
        problems += _check_chain(stage, entry, stages, scans, scans_by_stage.get(_PREVIOUS.get(stage, "")))
        scans_by_stage[stage] = scans
    leftovers = [f".tmp_{s}" for s in STAGES if fs.exists(fs.join(out, f".tmp_{s}"))]
    if leftovers:
        _LOG.warning("audit: unfinished stage folders in %s (a killed run?): %s", out, leftovers)
    return problems
