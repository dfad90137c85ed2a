"""The audit of the k-fold and temporal split modes (docs/splits.md), called by ``transforms/audit.py``.

- k-fold split: every data-table row of ``split/fold_i/`` (and so, by the record check, every record) has a target
  whose fold is i by ``transforms.splitting.kfold_assignment`` recomputed from the tables (a target's label: the
  max of its examples' labels); ``split/folds.json`` agrees with the manifest and the rule; no target in two folds
  is the generic leakage check over the fold folders.
- k-fold analyze: every ``stats/cv_NN/`` holds finite statistics; each iteration read exactly its train folds'
  examples (per fold), and handed tf.Transform exactly those (without a cap, less the outliers) or, with a cap,
  the capped count recomputed from the train folds' data tables.
- k-fold normalize: every ``norm/cv_NN/{split}/`` folder is checked like ``norm/{split}/`` (files, records against
  tables, values) and holds exactly the uids of the folds the split plays in the iteration.
- temporal split: the assignment recomputed from the time column of the tables (``temporal_assignment``): every
  target in the split the rule gives, the time order of the splits' keys, the straddling targets counted.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from typing import Any

from transforms.audit_folders import MAX_LISTED, FileAccess, FolderScan, scan_folder
from transforms.audit_values import check_folder_records, check_stats
from transforms.contract import FOLDS_FILE, NORM_DIR, SPLIT_DIR, SPLITS, STATS_DIR, fold_name, norm_prefix
from transforms.splitting import (
    CV_RULES,
    cv_iterations,
    fold_roles,
    kfold_assignment,
    temporal_assignment,
    temporal_order_problems,
)


def _table_rows(fs: FileAccess, folder: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in fs.glob(fs.join(folder, "data_tbl_*-*.csv")):
        rows += list(csv.DictReader(io.StringIO(fs.read_text(path))))
    return rows


def _listed(items: list[str]) -> str:
    return ", ".join(items[:MAX_LISTED]) + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


# ---- k-fold -----------------------------------------------------------------------------------------------------
def check_fold_split(fs: FileAccess, out: str, entry: dict[str, Any], scans: dict[str, FolderScan]) -> list[str]:
    """Fold membership by the assignment function, and ``folds.json`` against the manifest."""
    k, salt, stratify = entry.get("k"), entry.get("salt", ""), bool(entry.get("stratify"))
    if not isinstance(k, int) or k < 2:
        return [f"split: the k-fold manifest entry has no valid k ({k!r})"]
    names = [fold_name(i) for i in range(k)]
    problems = []
    if sorted(scans) != names:
        problems.append(f"split: the manifest lists the folds {sorted(scans)}, k = {k} means {names}")
    labels: dict[str, list[int]] = defaultdict(list)
    for scan in scans.values():
        for row in scan.rows:
            labels[row.target_id].append(int(row.label) if row.label.lstrip("-").isdigit() else 0)
    folds = kfold_assignment({t: max(v) for t, v in labels.items()}, k, salt, stratify)
    for name, scan in sorted(scans.items()):
        wrong = sorted({row.target_id for row in scan.rows if name != fold_name(folds[row.target_id])})
        if wrong:
            shown = [f"'{t}' (fold {fold_name(folds[t])})" for t in wrong]
            problems.append(f"split: {name} holds examples of targets of other folds: {_listed(shown)}")
    problems += _check_folds_file(fs, out, entry, scans)
    return problems


def _check_folds_file(fs: FileAccess, out: str, entry: dict[str, Any], scans: dict[str, FolderScan]) -> list[str]:
    path = fs.join(out, SPLIT_DIR, FOLDS_FILE)
    if not fs.exists(path):
        return [f"split: {SPLIT_DIR}/{FOLDS_FILE} is missing"]
    try:
        plan = json.loads(fs.read_text(path))
    except ValueError as error:
        return [f"split: {SPLIT_DIR}/{FOLDS_FILE} is not JSON: {error}"]
    problems = []
    for key in ("k", "salt", "stratify", "cv_val"):
        if plan.get(key) != entry.get(key):
            problems.append(f"split: {FOLDS_FILE} has {key} = {plan.get(key)!r}, the manifest {entry.get(key)!r}")
    cv_val = entry.get("cv_val", "next")
    expected = cv_iterations(entry["k"], cv_val) if cv_val in CV_RULES else []
    if (
        plan.get("rule") != CV_RULES.get(cv_val)
        or [{key: it.get(key) for key in ("iteration", "train", "val", "test")} for it in plan.get("iterations", [])]
        != expected
    ):
        problems.append(f"split: {FOLDS_FILE} iterations do not follow the rule {CV_RULES.get(cv_val)}")
    for fold in plan.get("folds", []):
        scan = scans.get(fold.get("name", ""))
        if scan is None:
            problems.append(f"split: {FOLDS_FILE} lists {fold.get('name')!r}, which is not a fold folder")
            continue
        targets = len({row.target_id for row in scan.rows})
        if (fold.get("examples"), fold.get("targets")) != (scan.records, targets):
            problems.append(
                f"split: {FOLDS_FILE} gives {fold['name']} {fold.get('examples')} examples of {fold.get('targets')} "
                f"targets; its folder holds {scan.records} of {targets}"
            )
    return problems


def _capped(rows: list[dict[str, str]], column: str, cap: int, excluded: set[str]) -> int:
    """The examples a cap of ``cap`` per value of ``column`` keeps of ``rows`` (``excluded`` uids left out first)."""
    groups = Counter(row.get(column, "") for row in rows if row["uid"] not in excluded)
    return sum(min(n, cap) for n in groups.values())


def check_fold_stats(
    fs: FileAccess, out: str, split: dict[str, Any], entry: dict[str, Any], scans: dict[str, FolderScan], cap_column
) -> list[str]:
    """Every iteration's statistics exist, are finite, and came from its train folds only (see the module)."""
    problems = []
    recorded = entry.get("iterations") or {}
    cap = entry.get("max_examples_per_group")
    for it in split.get("iterations", []):
        name = it.get("name", "")
        problems += check_stats(fs, out, f"{STATS_DIR}/{name}")
        mine = recorded.get(name)
        if mine is None:
            problems.append(f"analyze: the manifest has no statistics entry for iteration {name}")
            continue
        train = [fold_name(j) for j in it["train"]]
        if mine.get("train_folds") != train:
            problems.append(
                f"analyze: {name} analyzed the folds {mine.get('train_folds')}, its train folds are {train}"
            )
        per_fold = {fold: scans[fold].records for fold in train if fold in scans}
        read = {fold: n for fold, n in (mine.get("read_by_fold") or {}).items() if n}
        if read != {fold: n for fold, n in per_fold.items() if n}:
            problems.append(f"analyze: {name} read {read} examples per fold; its train folds hold {per_fold}")
        examples = sum(per_fold.values())
        outliers = mine.get("stats_outliers_excluded", 0)
        listed = set(mine.get("stats_outlier_uids") or [])
        expected: int | None = examples - outliers
        if cap is not None:
            rows = [row for fold in train for row in _table_rows(fs, fs.join(out, SPLIT_DIR, fold))]
            expected = _capped(rows, cap_column, cap, listed) if len(listed) == outliers else None
        for pass_name, seen in (mine.get("analyzed_examples") or {}).items():
            if seen.get("read") != examples:
                problems.append(
                    f"analyze: {name} pass '{pass_name}' read {seen.get('read')}, train folds hold {examples}"
                )
            if seen.get("analyzed") != seen.get("handed"):
                problems.append(
                    f"analyze: {name} pass '{pass_name}' handed {seen.get('handed')} examples to tf.Transform, "
                    f"whose analyzers saw {seen.get('analyzed')}"
                )
            if expected is not None and seen.get("handed") != expected:
                problems.append(
                    f"analyze: {name} pass '{pass_name}' analyzed {seen.get('handed')} examples; its train folds give "
                    f"{expected} (cap {cap}, {outliers} outliers)"
                )
    return problems


def check_fold_norm(
    fs: FileAccess, out: str, split: dict[str, Any], entry: dict[str, Any], scans: dict[str, FolderScan], scanner
) -> list[str]:
    """Every iteration's normalized folders: files and records (as ``norm/{split}``), counts against the manifest,
    and exactly the uids of the folds each split plays (so no target crosses splits, no uid repeats)."""
    problems = []
    recorded = entry.get("iterations") or {}
    uids = {name: {row.uid for row in scan.rows} for name, scan in scans.items()}
    for it in split.get("iterations", []):
        name = it.get("name", "")
        mine = (recorded.get(name) or {}).get("splits") or {}
        roles = fold_roles(it)
        for part in SPLITS:
            relative = f"{NORM_DIR}/{name}/{part}"
            scan = scan_folder(fs, out, relative, norm_prefix(part))
            problems += scan.problems
            problems += check_folder_records(fs, out, "normalize", relative, norm_prefix(part), part, scanner)
            folds = [fold_name(fold) for fold, role in sorted(roles.items()) if role == part]
            expected = set().union(*(uids.get(fold, set()) for fold in folds))
            got = [row.uid for row in scan.rows]
            if set(got) != expected or len(got) != len(expected):
                problems.append(
                    f"normalize: {relative} holds {len(got)} examples ({len(set(got) - expected)} not of its folds "
                    f"{folds}, {len(expected - set(got))} of them missing)"
                )
            listed = (mine.get(part) or {}).get("examples")
            if listed != scan.records:
                problems.append(f"normalize: {relative} has {scan.records} records, the manifest says {listed}")
    return problems


# ---- temporal ---------------------------------------------------------------------------------------------------
def check_temporal_split(fs: FileAccess, out: str, entry: dict[str, Any]) -> list[str]:
    """The temporal assignment recomputed from the data tables' time column (see the module docstring)."""
    column = entry.get("time_column")
    ranges: dict[str, list[float]] = {}
    where: dict[str, str] = {}
    for split in SPLITS:
        for row in _table_rows(fs, fs.join(out, SPLIT_DIR, split)):
            try:
                time = float(row.get(column, ""))
            except (TypeError, ValueError):
                return [f"split: {SPLIT_DIR}/{split} example '{row['uid']}' has no time in column '{column}'"]
            low, high = ranges.get(row["target_id"], (time, time))
            ranges[row["target_id"]] = [min(low, time), max(high, time)]
            where.setdefault(row["target_id"], split)
    keys = {split: [ranges[t][0] for t, s in where.items() if s == split] for split in SPLITS}
    problems = [f"split: {problem}" for problem in temporal_order_problems(keys)]
    plan = temporal_assignment({t: tuple(r) for t, r in ranges.items()}, entry.get("fractions"), entry.get("cuts"))
    misplaced = sorted(t for t, split in where.items() if plan.splits.get(t) != split)
    if misplaced:
        shown = [f"'{t}' in {where[t]} (rule: {plan.splits[t]})" for t in misplaced]
        problems.append(f"split: targets not where the temporal rule puts them: {_listed(shown)}")
    if entry.get("straddling_targets") != len(plan.straddling):
        problems.append(
            f"split: {len(plan.straddling)} targets straddle a cut, the manifest says {entry.get('straddling_targets')}"
        )
    return problems
