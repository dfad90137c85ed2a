"""Audit of what a dataset holds, read from the records themselves (docs/ARCHITECTURE.md section 5).

``transforms/audit.py`` checks structure and accounting from file names, record counts and data tables; this
module streams every record of every shard:

- each shard's records carry exactly the (uid, target_id, label) triples its data table lists (a target id or
  label changed inside a record, or a record swapped between shards, is found);
- normalized shards (float_list features): every value finite, and the train split not collapsed (most examples
  with a spread below ``COLLAPSED_STD``, the mark of statistics wrecked by an outlier);
- statistics: every ``OUT/stats/*.npz`` array finite and every array whose name ends in ``std`` positive.

``scan_shard`` is the per-shard unit of work: ``sigforge audit`` maps it over shards in-process or, with
``--beam``, in a Beam pipeline (``beam_pipelines/commands/audit.py``); the trainer's pre-flight check uses the
same code.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transforms.contract import LABEL, STATS_DIR, TARGET_ID, UID
from transforms.tfrecord import read_record

# A normalized example whose float values have a std below this has collapsed to a constant.
COLLAPSED_STD = 1e-3
_MAX_LISTED = 20


@dataclass
class ShardScan:
    """One shard read record by record: its (uid, target_id, label) triples and the uids with bad values."""

    path: str
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)
    collapsed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def example_values(example) -> np.ndarray | None:
    """All float_list values of a tf.Example (normalized features) as one float64 array, None if it has none."""
    parts = [
        np.asarray(feature.float_list.value, dtype=np.float64)
        for _, feature in sorted(example.features.feature.items())
        if feature.WhichOneof("kind") == "float_list"
    ]
    return np.concatenate(parts) if parts else None


def scan_shard(path: str, fs: Any) -> ShardScan:
    """Streams one TFRecord shard through ``fs`` (the audit's file API) and decodes every record."""
    from tensorflow.core.example import example_pb2

    scan = ShardScan(path)
    try:
        with fs.open_read(path) as handle:
            while (record := read_record(handle)) is not None:
                example = example_pb2.Example.FromString(record)
                feature = example.features.feature
                uid = feature[UID].bytes_list.value[0].decode("utf-8") if feature[UID].bytes_list.value else ""
                target = feature[TARGET_ID].bytes_list.value
                labels = feature[LABEL].int64_list.value
                scan.keys.append((uid, target[0].decode("utf-8") if target else "", str(labels[0]) if labels else ""))
                values = example_values(example)
                if values is None or not values.size:
                    continue
                if not np.isfinite(values).all():
                    scan.non_finite.append(uid)
                elif values.size > 1 and values.std() < COLLAPSED_STD:
                    scan.collapsed.append(uid)
    except (ValueError, OSError) as error:  # a damaged record or undecodable example (DecodeError is a ValueError)
        scan.problems.append(f"{path}: cannot read records: {error}")
    return scan


def check_against_table(relative: str, scan: ShardScan, rows: list[dict[str, str]]) -> list[str]:
    """The shard's record triples must equal its data-table rows (as multisets)."""
    in_records = Counter(scan.keys)
    in_table = Counter((r.get("uid", ""), r.get("target_id", ""), str(r.get("label", ""))) for r in rows)
    if in_records == in_table:
        return []
    only_records = sorted((in_records - in_table).elements())
    only_table = sorted((in_table - in_records).elements())
    name = scan.path.rstrip("/").rsplit("/", 1)[-1]
    problems = [
        f"{relative}: {name} record (uid, target_id, label) {key} is not in its data table"
        for key in only_records[:_MAX_LISTED]
    ]
    problems += [
        f"{relative}: {name} data-table row (uid, target_id, label) {key} has no such record"
        for key in only_table[:_MAX_LISTED]
    ]
    return problems


def check_values(stage: str, relative: str, split: str, scans: list[ShardScan]) -> list[str]:
    """Normalized values: none non-finite; in the train split at most half the examples collapsed."""
    problems = []
    non_finite = [uid for scan in scans for uid in scan.non_finite]
    if non_finite:
        problems.append(
            f"{stage}: {relative} has {len(non_finite)} examples with NaN/inf values, e.g. {non_finite[:5]}"
        )
    total = sum(len(scan.keys) for scan in scans)
    collapsed = [uid for scan in scans for uid in scan.collapsed]
    if split == "train" and total and len(collapsed) * 2 > total:
        problems.append(
            f"{stage}: {len(collapsed)} of {total} train examples in {relative} have collapsed to a constant "
            f"(std < {COLLAPSED_STD}): statistics dominated by an outlier?"
        )
    return problems


def check_stats(fs: Any, out: str, folder: str = STATS_DIR) -> list[str]:
    """Every array in ``OUT/stats/*.npz`` (``OUT/folder/*.npz``) finite (numeric arrays), loadable without
    pickles, and every array named ``*std`` strictly positive."""
    paths = fs.glob(fs.join(out, folder, "*.npz"))
    if not paths:
        return [f"analyze: no statistics (*.npz) in {folder}/"]
    problems = []
    for path in paths:
        name = f"{folder}/{fs.basename(path)}"
        try:
            with np.load(io.BytesIO(fs.read_bytes(path)), allow_pickle=False) as arrays:
                loaded = {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError) as error:
            problems.append(f"analyze: {name} cannot be read: {error}")
            continue
        for key, array in sorted(loaded.items()):
            if not np.issubdtype(array.dtype, np.number):
                continue
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                problems.append(f"analyze: {name} array '{key}' {array.shape} has {bad} non-finite values (NaN/inf)")
            elif key.endswith("std") and not (array > 0).all():
                problems.append(f"analyze: {name} array '{key}' has values <= 0 (degenerate statistics)")
    return problems


def in_process(paths: list[str], fs: Any) -> list[ShardScan]:
    """The default shard scanner: ``scan_shard`` over ``paths`` one after another."""
    return [scan_shard(path, fs) for path in paths]


def check_folder_records(
    fs: Any, out: str, stage: str, relative: str, prefix: str, split: str, scanner=in_process
) -> list[str]:
    """Reads every ``{prefix}_shard_*`` record of ``OUT/relative`` (with ``scanner(paths, fs)``) and checks it
    against its own data table and, for float_list (normalized) features, its values."""
    import csv

    folder = fs.join(out, relative)
    paths = [p for p in fs.glob(fs.join(folder, f"{prefix}_shard_*-*.tfrecord"))]
    problems = []
    scans = scanner(paths, fs)
    for scan in scans:
        problems += scan.problems
        number = scan.path.rsplit("_shard_", 1)[-1].removesuffix(".tfrecord")
        table = fs.join(folder, f"data_tbl_{number}.csv")
        rows = list(csv.DictReader(io.StringIO(fs.read_text(table)))) if fs.exists(table) else []
        problems += check_against_table(relative, scan, rows)
    return problems + check_values(stage, relative, split, scans)
