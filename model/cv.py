"""``sigforge train --cv``: one model per iteration of a k-fold dataset (:mod:`model.kfold`), the out-of-fold
predictions and the metrics over iterations with confidence intervals. Also how ``predict`` finds the models of
a CV run.

A CV run folder ``RUNS/{name}_cv_{YYYYMMDD_HHMM}/`` (``prefix`` = its name) holds::

    iter_XX/                 iteration XX's run: an ordinary run folder (files named {prefix}_iter_XX*), trained
                             on norm/cv_XX with the statistics stats/cv_XX, threshold chosen on its val fold
    cv_metrics.csv           one row per iteration: its folds, test counts, ROC-AUC, PR-AUC, log loss, and at its
                             val-chosen threshold accuracy, precision, recall, F1, specificity
    oof_predictions.csv      uid,target_id,label,fold,iteration,score: every example of the dataset once, scored
                             by the iteration whose test fold holds it (the model that saw neither it nor its
                             target); checked in code (transforms/evaluation/crossval.py)
    summary.json             per metric: mean, sd, Student-t 95% interval over iterations; the pooled OOF ROC-AUC
                             and PR-AUC
    cv_run.json              the dataset, folds.json digest, config source and overrides, and per iteration its
                             folds, run folder, model and dataset view; written last (a CV run without it is
                             incomplete)
"""

from __future__ import annotations

import csv
import io
import logging
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from model.artifacts import RunPaths, make_run_dir, read_json, write_json, write_text
from model.config import TrainerConfig
from model.data import join, read_manifest
from model.errors import DatasetError, RunError
from model.kfold import (
    IterationTables,
    KFold,
    iteration_of,
    iteration_overrides,
    iteration_view,
    read_iteration_tables,
    read_kfold,
)
from transforms.config import ConfigError
from transforms.evaluation import metrics as M
from transforms.evaluation.crossval import LEVEL, CoverageError, check_oof_coverage, summarize

logger = logging.getLogger(__name__)

CV_RUN, CV_METRICS, OOF, SUMMARY = "cv_run.json", "cv_metrics.csv", "oof_predictions.csv", "summary.json"
SUMMARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "accuracy", "precision", "recall", "f1", "specificity")
OOF_COLUMNS = ("uid", "target_id", "label", "fold", "iteration", "score")
METRIC_COLUMNS = (
    "iteration",
    "test_fold",
    "val_folds",
    "train_folds",
    "n_test",
    "n_positive",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "threshold",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "specificity",
    "run_dir",
)

# (extra --set items, CV run folder, iteration folder name, file prefix) -> the iteration's run folder.
TrainIteration = Callable[[Sequence[str], str, str, str], str]


def iteration_folder(index: int) -> str:
    return f"iter_{index:02d}"


def run_cv(
    data_dir: str,
    config: TrainerConfig,
    out_dir: str,
    train_iteration: TrainIteration,
    *,
    name: str,
    source: str | None = None,
    overrides: Sequence[str] = (),
) -> str:
    """Trains every iteration of the k-fold dataset ``data_dir`` with ``train_iteration`` (``model.train``'s
    ``train`` bound to the config) and writes the CV outputs; returns the CV run folder.

    Refusals before any training: DatasetError ``not_kfold`` (no ``split/folds.json``), ``bad_folds`` (plan or
    iteration layout broken), ConfigError (``data.subdir`` already an iteration's). RunError ``oof_coverage`` if
    the iterations' test scores do not cover every example exactly once.
    """
    kfold = read_kfold(data_dir)
    if kfold is None:
        raise DatasetError(f"--cv needs a k-fold dataset, but {data_dir} has no split/folds.json", "not_kfold")
    if iteration_of(config) is not None:
        raise ConfigError(
            f"--cv trains every iteration: data.subdir must name the base folder (e.g. norm), not {config.data.subdir}"
        )
    tables = read_iteration_tables(data_dir, config, kfold)
    manifest_path, manifest_sha, _ = read_manifest(data_dir)
    paths = make_run_dir(out_dir, f"{name}_cv")
    logger.info("cv: %d iterations of %s into %s", len(kfold.iterations), data_dir, paths.run_dir)
    members = []
    for index, item in enumerate(kfold.iterations):
        folder = iteration_folder(index)
        extra = iteration_overrides(config, index)
        logger.info("cv: iteration %d/%d (test fold %s)", index + 1, len(kfold.iterations), item["test"])
        run_dir = train_iteration(extra, paths.run_dir, folder, f"{paths.prefix}_{folder}")
        run = RunPaths.find(run_dir)
        members.append(
            {
                "iteration": index,
                **{role: item[role] for role in ("train", "val", "test")},
                "run_dir": folder,
                "prefix": run.prefix,
                "model": posixpath.join(folder, posixpath.basename(run.model)),
                **dict(zip(("data_subdir", "stats_subdir"), iteration_view(config, index), strict=True)),
            }
        )
    rows, oof = collect(paths.run_dir, kfold, tables)
    write_text(join(paths.run_dir, CV_METRICS), _csv(METRIC_COLUMNS, rows))
    write_text(join(paths.run_dir, OOF), _csv(OOF_COLUMNS, oof))
    summary = summarize_cv(rows, oof, kfold)
    write_json(join(paths.run_dir, SUMMARY), {"prefix": paths.prefix, **summary})
    write_json(
        join(paths.run_dir, CV_RUN),
        {
            "kind": "cv",
            "prefix": paths.prefix,
            "run_name": name,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data_dir": data_dir,
            "manifest": {"path": manifest_path, "sha256": manifest_sha},
            "folds": kfold.describe(),
            "config_source": source,
            "overrides": list(overrides),
            "iterations": members,
        },
    )
    roc = summary["metrics"]["roc_auc"]
    logger.info(
        "cv: test ROC-AUC %.4f +- %.4f (95%% CI over %d iterations), OOF ROC-AUC %.4f",
        roc["mean"],
        roc["half_width"],
        roc["n"],
        summary["oof"]["roc_auc"],
    )
    return paths.run_dir


def collect(cv_dir: str, kfold: KFold, tables: Sequence[IterationTables]) -> tuple[list[dict], list[dict]]:
    """(cv_metrics rows, out-of-fold rows) from the iteration runs' metrics and ``scores_test.csv``; raises
    RunError ``oof_coverage`` unless each iteration scored exactly its test fold's examples (labels as its data
    tables list) and all together every example of the dataset exactly once."""
    rows, oof, assigned, problems = [], [], {}, []
    for item, table in zip(kfold.iterations, tables, strict=True):
        index = table.index
        run = RunPaths.find(join(cv_dir, iteration_folder(index)))
        saved = read_json(run.metrics)
        test = saved["splits"]["test"]
        rows.append(
            {
                "iteration": index,
                "test_fold": kfold.test_fold(index),
                "val_folds": _folds(item["val"]),
                "train_folds": _folds(item["train"]),
                "n_test": test["n_examples"],
                "n_positive": test["n_positive"],
                **{key: test.get(key) for key in METRIC_COLUMNS[6:-1]},
                "run_dir": iteration_folder(index),
            }
        )
        expected = table.splits["test"]
        scored = _read_scores(run.scores("test"))
        assigned[index] = [uid for uid, _, _ in scored]
        if set(assigned[index]) != set(expected):
            problems.append(f"iteration {index} scored {len(scored)} examples, its test split holds {len(expected)}")
        for uid, label, score in scored:
            target, table_label = expected.get(uid, ("", label))
            if label != table_label:
                problems.append(
                    f"iteration {index}: {uid} scored with label {label}, its data table says {table_label}"
                )
            oof.append(
                {
                    "uid": uid,
                    "target_id": target,
                    "label": label,
                    "fold": kfold.test_fold(index),
                    "iteration": index,
                    "score": score,
                }
            )
    universe = [uid for split in tables[0].splits.values() for uid in split]
    try:
        check_oof_coverage(universe, assigned)
    except CoverageError as error:
        problems += error.problems
    if problems:
        raise RunError(f"cv run {cv_dir}: out-of-fold scores: " + "; ".join(problems[:10]), "oof_coverage")
    oof.sort(key=lambda r: (r["iteration"], r["uid"]))
    return rows, oof


def summarize_cv(rows: Sequence[dict], oof: Sequence[dict], kfold: KFold) -> dict[str, Any]:
    """summary.json: per-metric t intervals over iterations and the metrics of the pooled OOF scores."""
    labels = [r["label"] for r in oof]
    scores = [r["score"] for r in oof]
    return {
        "k": kfold.k,
        "iterations": len(rows),
        "level": LEVEL,
        "interval": "mean +- t_{(1+level)/2, n-1} * sd / sqrt(n) over the iterations' test folds (sd with ddof=1)",
        "threshold": "each iteration's own, chosen on its val fold; thresholded metrics at it",
        "metrics": summarize(rows, SUMMARY_METRICS, LEVEL),
        "oof": {
            "n_examples": len(oof),
            "n_positive": int(sum(labels)),
            "roc_auc": M.roc_auc(labels, scores),
            "pr_auc": M.average_precision(labels, scores),
        },
    }


def _folds(folds: Sequence[int]) -> str:
    return ";".join(str(f) for f in folds)


def _read_scores(path: str) -> list[tuple[str, int, float]]:
    with tf.io.gfile.GFile(path, "r") as handle:
        return [(r["uid"], int(r["label"]), float(r["score"])) for r in csv.DictReader(io.StringIO(handle.read()))]


def _csv(columns: Sequence[str], rows: Sequence[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if value != value else f"{value:.9g}"  # NaN (an undefined metric): empty
    return "" if value is None else value


@dataclass(frozen=True)
class CVMember:
    """One iteration of a CV run: its number and run folder."""

    iteration: int
    run_dir: str


def read_cv_run(run_dir: str) -> list[CVMember] | None:
    """The iterations of the CV run in ``run_dir`` (in order), or None when ``run_dir`` is not a CV run."""
    path = join(run_dir.rstrip("/"), CV_RUN)
    if not tf.io.gfile.exists(path):
        return None
    saved = read_json(path)
    iterations = saved.get("iterations")
    if saved.get("kind") != "cv" or not isinstance(iterations, list) or not iterations:
        raise RunError(f"{path} is not a CV run record (kind 'cv' with iterations)")
    members = [CVMember(int(item["iteration"]), join(run_dir.rstrip("/"), item["run_dir"])) for item in iterations]
    missing = [m.run_dir for m in members if not tf.io.gfile.isdir(m.run_dir)]
    if missing:
        raise RunError(f"CV run {run_dir}: iteration folder(s) {missing} are missing")
    return members
