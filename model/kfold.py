"""A k-fold dataset as the trainer reads it: ``OUT/split/folds.json`` and one dataset view per iteration.

Layout (the split/analyze/normalize stages write it; docs/splits.md)::

    OUT/split/folds.json            {"mode": "kfold", "k": K, "salt", "stratify", "rule",
                                     "folds": [{"fold", "examples", "targets", "positives"}, ...],
                                     "iterations": [{"iteration": i, "train": [...], "val": [j], "test": [i]}, ...]}
    OUT/stats/cv_XX/                iteration XX's statistics (like OUT/stats/: transform_fn/, ...), from its train
    OUT/norm/cv_XX/{train,val,test}/  iteration XX's shards normalized with them (like OUT/norm/{split}/)

An iteration is trained as an ordinary dataset whose ``data.subdir`` is ``norm/cv_XX`` and ``data.stats_subdir``
``stats/cv_XX`` (:func:`iteration_overrides`), so a run folder of an iteration records which statistics its
inputs need, and ``predict`` applies that iteration's own transform_fn.

Refusals (``DatasetError`` codes): ``not_kfold`` (``--cv`` or ``--iteration`` on a dataset without
``folds.json``), ``kfold_needs_cv`` (plain training on a k-fold dataset: there is no single train split),
``no_such_iteration``, ``cv_stats_mismatch`` (an iteration's shards with another iteration's statistics),
``bad_folds`` (a folds.json or iteration layout that breaks the rules).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from model.config import TrainerConfig
from model.data import join, read_data_tables, read_manifest
from model.errors import DatasetError
from transforms.contract import SPLIT_DIR, SPLITS, TABLE_PATTERN
from transforms.evaluation.crossval import check_iterations, overlaps

FOLDS_FILE = "folds.json"
KFOLD = "kfold"
_ITERATION_DIR = re.compile(r"^(?P<base>.+)/cv_(?P<index>\d{2,})$")


def iteration_name(index: int) -> str:
    """``3`` -> ``cv_03``, the folder of iteration 3 under ``norm/`` and ``stats/``."""
    return f"cv_{index:02d}"


@dataclass(frozen=True)
class KFold:
    """A dataset's ``split/folds.json``, checked: ``iterations[i]`` has ``train``, ``val`` and ``test`` folds."""

    path: str
    sha256: str
    k: int
    folds: list[dict[str, Any]]
    iterations: list[dict[str, Any]]

    def test_fold(self, index: int) -> int:
        return int(self.iterations[index]["test"][0])

    def fold_examples(self, fold: int) -> int | None:
        """``examples`` of ``fold`` in folds.json, None when not recorded."""
        for entry in self.folds:
            if entry.get("fold") == fold:
                value = entry.get("examples")
                return int(value) if isinstance(value, int) else None
        return None

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "mode": KFOLD, "k": self.k}


def read_kfold(data_dir: str) -> KFold | None:
    """The dataset's k-fold plan, or None for a train/val/test dataset; DatasetError (``bad_folds``) when
    ``folds.json`` and the manifest's split entry disagree or the plan breaks the rules
    (:func:`transforms.evaluation.crossval.check_iterations`)."""
    path = join(data_dir, SPLIT_DIR, FOLDS_FILE)
    entry = _split_entry(data_dir)
    mode = entry.get("mode")
    if not tf.io.gfile.exists(path):
        if mode == KFOLD:
            raise DatasetError(f"the manifest of {data_dir} records a k-fold split but {path} is missing", "bad_folds")
        return None
    with tf.io.gfile.GFile(path, "rb") as handle:
        raw = handle.read()
    try:
        plan = json.loads(raw)
    except ValueError as error:
        raise DatasetError(f"{path} is not valid JSON: {error}", "bad_folds") from None
    k, iterations = plan.get("k"), plan.get("iterations")
    problems = []
    if plan.get("mode") != KFOLD:
        problems.append(f"mode is {plan.get('mode')!r}, not '{KFOLD}'")
    if mode not in (None, KFOLD) or entry.get("k", k) != k:
        problems.append(f"the manifest's split entry says mode {mode!r}, k {entry.get('k')!r}")
    if not isinstance(k, int) or not isinstance(iterations, list) or not isinstance(plan.get("folds"), list):
        problems.append("k (an integer), folds and iterations (lists) are required")
    else:
        problems += check_iterations(k, iterations)
        if len(plan["folds"]) != k:
            problems.append(f"folds lists {len(plan['folds'])} folds, k is {k}")
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems), "bad_folds")
    return KFold(path, hashlib.sha256(raw).hexdigest(), k, list(plan["folds"]), list(iterations))


def _split_entry(data_dir: str) -> dict[str, Any]:
    if not tf.io.gfile.exists(join(data_dir, "manifest.json")):
        return {}  # check_dataset reports the missing manifest
    entry = read_manifest(data_dir)[2].get("stages", {}).get("split")
    return entry if isinstance(entry, dict) else {}


def iteration_view(config: TrainerConfig, index: int) -> tuple[str, str]:
    """(shard folder, statistics folder) of iteration ``index`` under ``config``'s base folders (``data.subdir``,
    ``data.stats_subdir``, e.g. ``norm`` and ``stats``): ``norm/cv_XX``, ``stats/cv_XX``."""
    name = iteration_name(index)
    return posixpath.join(config.data.subdir, name), posixpath.join(config.data.stats_subdir, name)


def iteration_overrides(config: TrainerConfig, index: int) -> list[str]:
    """The ``--set`` items that point ``config`` at iteration ``index`` (:func:`iteration_view`)."""
    subdir, stats_subdir = iteration_view(config, index)
    return [f"data.subdir={subdir}", f"data.stats_subdir={stats_subdir}"]


def iteration_of(config: TrainerConfig) -> int | None:
    """The iteration whose shards ``config`` reads (``data.subdir`` ``.../cv_XX``), None for a base folder."""
    match = _ITERATION_DIR.match(config.data.subdir.rstrip("/"))
    return None if match is None else int(match.group("index"))


def check_split_mode(data_dir: str, config: TrainerConfig, kfold: KFold | None) -> None:
    """The gate of plain training: on a k-fold dataset only an iteration's view (shards and statistics of the
    same iteration) can be trained; raises DatasetError ``kfold_needs_cv`` / ``cv_stats_mismatch`` /
    ``not_kfold``."""
    index = iteration_of(config)
    if kfold is None:
        if index is not None:
            raise DatasetError(
                f"data.subdir {config.data.subdir} is a cross-validation iteration's, but {data_dir} has no "
                f"{SPLIT_DIR}/{FOLDS_FILE}: not a k-fold dataset",
                "not_kfold",
            )
        return
    if index is None:
        raise DatasetError(
            f"{data_dir} is a k-fold dataset (k={kfold.k}, {kfold.path}) with no single train split: train every "
            f"iteration with --cv, or one with --iteration N",
            "kfold_needs_cv",
        )
    if index >= len(kfold.iterations):
        raise DatasetError(
            f"iteration {index} does not exist: {kfold.path} lists iterations 0 to {len(kfold.iterations) - 1}",
            "no_such_iteration",
        )
    stats = _ITERATION_DIR.match(config.data.stats_subdir.rstrip("/"))
    if stats is None or int(stats.group("index")) != index:
        raise DatasetError(
            f"data.subdir {config.data.subdir} is iteration {index}'s shards, normalized with its own statistics "
            f"{iteration_name(index)}, but data.stats_subdir is {config.data.stats_subdir}",
            "cv_stats_mismatch",
        )


@dataclass(frozen=True)
class IterationTables:
    """The data-table rows of one iteration's splits: uid -> (target_id, label) per split."""

    index: int
    splits: dict[str, dict[str, tuple[str, int]]]


def read_iteration_tables(data_dir: str, config: TrainerConfig, kfold: KFold) -> list[IterationTables]:
    """Every iteration's data tables, checked before any training (DatasetError ``bad_folds``).

    Each iteration's folders (``{subdir}/cv_XX/{train,val,test}`` with data tables, ``{stats_subdir}/cv_XX``)
    exist; its splits share no example and no target (its test examples are unseen in training and model
    selection); every iteration holds the same examples; each test split has the examples folds.json records
    for its fold.
    """
    result, problems = [], []
    universe: set[str] | None = None
    for index in range(len(kfold.iterations)):
        name = iteration_name(index)
        stats = join(data_dir, config.data.stats_subdir, name)
        if not tf.io.gfile.isdir(join(stats, "transform_fn")):
            problems.append(f"{stats}/transform_fn is missing")
        splits: dict[str, dict[str, tuple[str, int]]] = {}
        for split in SPLITS:
            folder = join(data_dir, config.data.subdir, name, split)
            tables = sorted(tf.io.gfile.glob(join(folder, TABLE_PATTERN))) if tf.io.gfile.isdir(folder) else []
            if not tables:
                problems.append(f"{folder} is missing or has no data tables ({TABLE_PATTERN})")
                continue
            rows = read_data_tables(tables)
            splits[split] = {r["uid"]: (r["target_id"], int(r["label"])) for r in rows}
            if len(splits[split]) != len(rows):
                problems.append(f"{folder}: a uid is listed twice")
        if len(splits) < len(SPLITS):
            continue
        uids = {split: set(rows) for split, rows in splits.items()}
        targets = {split: {t for t, _ in rows.values()} for split, rows in splits.items()}
        shared = overlaps(uids)
        leaked = overlaps(targets)
        if shared or leaked:
            problems.append(
                f"iteration {index}: {len(shared)} example(s) and {len(leaked)} target(s) are in two of its splits, "
                f"e.g. {sorted(shared)[:3] + sorted(leaked)[:3]}"
            )
        everything = set().union(*uids.values())
        if universe is None:
            universe = everything
        elif everything != universe:
            problems.append(f"iteration {index} holds {len(everything)} examples, iteration 0 {len(universe)}")
        expected = kfold.fold_examples(kfold.test_fold(index))
        if expected is not None and expected != len(uids["test"]):
            problems.append(
                f"iteration {index}: test (fold {kfold.test_fold(index)}) has {len(uids['test'])} examples, "
                f"{FOLDS_FILE} says {expected}"
            )
        result.append(IterationTables(index, splits))
    if problems:
        raise DatasetError(f"k-fold dataset {data_dir}: " + "; ".join(problems[:10]), "bad_folds")
    return result
