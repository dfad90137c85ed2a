"""The dataset audit: checks a dataset folder against the contract (docs/ARCHITECTURE.md sections 3 and 5).

``audit_dataset(out)`` returns human-readable problems (an empty list means clean). Only stages recorded in the
manifest are audited; the others are skipped (logged at INFO). For each audited stage it checks:

- accounting: ``seen == written + rejected`` and ``rejected == sum(rejected_by_reason)``; the rows of
  ``OUT/rejected/<stage>.csv`` match ``rejected``; a stage sees exactly what the previous one wrote
  (split <- build, normalize <- split, filter <- normalize);
- files (``transforms/audit_folders.py``): every shard folder holds a complete ``NNNN-TOTAL`` sequence of shards
  and the data tables with the same numbers, every table row names its own shard, and no other files;
- counts: TFRecord records are counted in every shard (record headers only, with the length checksum) and must
  equal that shard's data-table rows and the manifest's counts (build: written; split/normalize/filter: per
  split examples); normalized and split shards hold the same number of records per split;
- uniqueness: no uid appears twice within a stage (across all its splits);
- leakage: no target_id (and, with ``group_column``, no value of that data-table column, e.g. ``source_id``)
  appears in two splits of the split, normalize or filter stage;
- statistics (analyze): every array in ``OUT/stats/*.npz`` is finite, every ``*std`` positive;
- records (``transforms/audit_values.py``): every record of every shard is read and must carry the (uid,
  target_id, label) its data table lists; normalized values are finite and the train split not collapsed;
- split modes (``transforms/audit_cv.py``): k-fold membership by the assignment function, every iteration's
  statistics from its train folds only, every iteration's normalized folders; the temporal rule and time order.

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
from collections import Counter, defaultdict
from typing import Any

from transforms import audit_cv
from transforms.audit_folders import MAX_LISTED, FileAccess, FolderScan, default_fs, scan_folder
from transforms.audit_inputs import check_inputs_accounted
from transforms.audit_values import check_folder_records, check_stats, in_process
from transforms.contract import (
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

_LOG = logging.getLogger(__name__)

# Stages whose output is one shard folder per split, the folder and the shard prefix of each.
_SPLIT_STAGES = {
    "split": (SPLIT_DIR, split_prefix),
    "normalize": (NORM_DIR, norm_prefix),
    "filter": (FILTERED_DIR, norm_prefix),
}
# Which stage's output each stage reads, for the "sees what the previous one wrote" check.
_PREVIOUS = {"split": "build", "normalize": "split", "filter": "normalize"}
_REJECTED_CSV = {s: rel for s, outs in STAGE_OUTPUTS.items() for rel in outs if rel.startswith(f"{REJECTED_DIR}/")}


def duplicate_uids(stage: str, scans: dict[str, FolderScan]) -> list[str]:
    """Uids listed more than once in a stage's data tables (within or across its folders)."""
    where: dict[str, list[str]] = defaultdict(list)
    for scan in scans.values():
        for row in scan.rows:
            where[row.uid].append(scan.folder)
    duplicated = sorted(uid for uid, folders in where.items() if len(folders) > 1)
    problems = [
        f"{stage}: uid '{uid}' appears {len(where[uid])} times ({', '.join(where[uid])})"
        for uid in duplicated[:MAX_LISTED]
    ]
    if len(duplicated) > MAX_LISTED:
        problems.append(f"{stage}: {len(duplicated)} duplicated uids in all ({MAX_LISTED} listed)")
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
        for value in leaked[:MAX_LISTED]
    ]
    if len(leaked) > MAX_LISTED:
        problems.append(f"{stage}: {len(leaked)} {key} values in more than one split ({MAX_LISTED} listed)")
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
    fs = default_fs(fs)
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
        kfold = stages.get("split", {}).get("mode") == "kfold"
        if stage == "analyze":
            if kfold:
                cap_column = (data.get("config") or {}).get("analyze", {}).get("cap_group_column", "target_id")
                split_scans = scans_by_stage.get("split", {})
                problems += audit_cv.check_fold_stats(fs, out, stages["split"], entry, split_scans, cap_column)
            else:
                problems += check_stats(fs, out)
            continue
        if stage == "normalize" and kfold:
            split_scans = scans_by_stage.get("split", {})
            problems += audit_cv.check_fold_norm(fs, out, stages.get("split", {}), entry, split_scans, scanner)
            iterations, written = (
                len(stages.get("split", {}).get("iterations", [])),
                stages.get("split", {}).get("written"),
            )
            if written is not None and entry.get("seen") != iterations * written:
                problems.append(
                    f"normalize: seen ({entry.get('seen')}) != {iterations} iterations x split written ({written})"
                )
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
            if stage == "split" and entry.get("mode") == "kfold":
                problems += audit_cv.check_fold_split(fs, out, entry, scans)
            if stage == "split" and entry.get("mode") == "temporal":
                problems += audit_cv.check_temporal_split(fs, out, entry)
        for scan in scans.values():
            problems += scan.problems
        problems += duplicate_uids(stage, scans)
        problems += _check_chain(stage, entry, stages, scans, scans_by_stage.get(_PREVIOUS.get(stage, "")))
        scans_by_stage[stage] = scans
    leftovers = [f".tmp_{s}" for s in STAGES if fs.exists(fs.join(out, f".tmp_{s}"))]
    if leftovers:
        _LOG.warning("audit: unfinished stage folders in %s (a killed run?): %s", out, leftovers)
    return problems
