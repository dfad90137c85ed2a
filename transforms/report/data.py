"""What the report reads from a dataset folder: the manifest, data tables per split, and a few examples.

All reads go through the injected file API (``ReportFiles``: ``transforms.audit_folders.FileAccess`` plus writes),
so the report works on any filesystem the caller's API reaches (``beam_pipelines.dataset.fs``: local, ``gs://``,
...).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from transforms.audit_folders import FileAccess
from transforms.contract import BASE_COLUMNS, NORM_DIR, SPLIT_DIR, SPLITS, TABLE_PATTERN, decode_example
from transforms.tfrecord import iter_records


class ReportFiles(FileAccess, Protocol):
    """The audit's reads plus the two writes the report needs (``beam_pipelines.dataset.fs`` satisfies it)."""

    def makedirs(self, path: str) -> None: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def write_text(self, path: str, text: str) -> None: ...


def read_rows(fs: FileAccess, folder: str) -> list[dict[str, str]]:
    """Every data-table row of one shard folder (all ``data_tbl_*.csv``), in table order."""
    rows: list[dict[str, str]] = []
    for path in fs.glob(fs.join(folder, TABLE_PATTERN)):
        rows += list(csv.DictReader(io.StringIO(fs.read_text(path))))
    return rows


def split_tables(fs: FileAccess, out: str, stage_dir: str = SPLIT_DIR) -> dict[str, list[dict[str, str]]]:
    """Data-table rows per split of ``OUT/<stage_dir>/{split}`` (splits without a folder are left out); for a
    k-fold split (no split folder, ``fold_NN`` folders), per fold."""
    tables = {}
    for split in SPLITS:
        folder = fs.join(out, stage_dir, split)
        if fs.exists(folder):
            tables[split] = read_rows(fs, folder)
    if not tables:
        for folder in sorted({path.rsplit("/", 2)[-2] for path in fs.glob(fs.join(out, stage_dir, "fold_*", "*.csv"))}):
            tables[folder] = read_rows(fs, fs.join(out, stage_dir, folder))
    return tables


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def numeric_columns(
    tables: dict[str, list[dict[str, str]]], per_target: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """column -> split -> float64 values (empty cells dropped) of every column that is numeric in every row that
    has a value; the contract's id columns (uid, target_id, shard) are left out, ``label`` is kept.

    ``per_target``: one value per target (the mean of its examples' values), the unit the split randomizes; the
    examples of one target (e.g. every transit of one star) are not independent draws."""
    columns: list[str] = []
    for rows in tables.values():
        for name in rows[0] if rows else []:
            if name not in columns and (name == "label" or name not in BASE_COLUMNS):
                columns.append(name)
    result: dict[str, dict[str, np.ndarray]] = {}
    for name in columns:
        per_split, numeric = {}, True
        for split, rows in tables.items():
            pairs = [(row.get("target_id", ""), row.get(name, "")) for row in rows]
            pairs = [(target, _number(text)) for target, text in pairs if text not in ("", None)]
            values = np.array([value for _, value in pairs], dtype=np.float64)
            if np.isnan(values).any():
                numeric = False
                break
            per_split[split] = _target_means(pairs) if per_target else values
        if numeric and any(v.size for v in per_split.values()):
            result[name] = per_split
    return result


def _target_means(pairs: list[tuple[str, float]]) -> np.ndarray:
    sums: dict[str, list[float]] = {}
    for target, value in pairs:
        sums.setdefault(target, []).append(value)
    return np.array([np.mean(values) for _, values in sorted(sums.items())], dtype=np.float64)


def shard_rows(fs: FileAccess, folder: str) -> dict[str, dict[str, str]]:
    """uid -> data-table row of one shard folder."""
    return {row["uid"]: row for row in read_rows(fs, folder)}


def read_examples(fs: FileAccess, folder: str, uids: set[str] | None = None, limit: int | None = None) -> Iterator:
    """``(uid, tf.train.Example)`` from the shards of ``folder``: those of ``uids`` (only the shards their table rows
    name are opened), or the first ``limit`` examples."""
    if uids is not None:
        shards = sorted({row["shard"] for uid, row in shard_rows(fs, folder).items() if uid in uids})
        paths = [fs.join(folder, shard) for shard in shards]
    else:
        paths = [p for p in fs.glob(fs.join(folder, "*.tfrecord")) if not fs.basename(p).startswith("data_tbl")]
    found = 0
    for path in paths:
        with fs.open_read(path) as handle:
            for serialized in iter_records(handle):
                example = decode_example(serialized)
                uid = example.features.feature["uid"].bytes_list.value[0].decode("utf-8")
                if uids is not None and uid not in uids:
                    continue
                yield uid, example
                found += 1
                if (limit is not None and found >= limit) or (uids is not None and found >= len(uids)):
                    return


def first_uid_per_label(rows: list[dict[str, str]]) -> dict[str, str]:
    """label -> the first uid (in table order) with that label."""
    chosen: dict[str, str] = {}
    for row in rows:
        chosen.setdefault(row["label"], row["uid"])
    return dict(sorted(chosen.items()))


def norm_folder(fs: FileAccess, out: str, split: str) -> str:
    return fs.join(out, NORM_DIR, split)


def floats(example, name: str) -> np.ndarray:
    """A float feature of a normalized example (float_list) or of a raw one (float32 bytes)."""
    feature = example.features.feature[name]
    if feature.float_list.value:
        return np.asarray(feature.float_list.value, dtype=np.float32)
    return np.frombuffer(feature.bytes_list.value[0], dtype="<f4")
