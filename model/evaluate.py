"""Scoring and metrics of a trained model; ``python -m model.evaluate`` re-evaluates a saved run.

The decision threshold is chosen once, on val (``evaluation.threshold``), and applied unchanged to every split.
Re-evaluation reloads ``{prefix}.keras``, scores a split again, applies the saved threshold and writes
``RUN_DIR/eval_{split}/`` (metrics JSON, scores CSV, plots); the metrics must reproduce the saved ones.
"""

from __future__ import annotations

import argparse
import logging
import math
import posixpath
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model import metrics as M
from model.artifacts import RunPaths, read_history_csv, read_json, write_json, write_scores_csv
from model.config import TrainerConfig, config_from_dict
from model.data import DatasetInfo, check_dataset, make_dataset, read_data_tables
from model.errors import DatasetError, RunError
from model.plots import SplitResult, write_plots
from transforms.config import ConfigError

logger = logging.getLogger(__name__)

# Metrics compared between a saved run and its re-evaluation, and the tolerance (scores are float32).
_COMPARED = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss")
_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SplitScores:
    """Per-example model output for one split, in dataset order; ``snr`` NaN where unknown, None if no column."""

    split: str
    uids: list[str]
    labels: np.ndarray
    scores: np.ndarray
    snr: np.ndarray | None = None


def predict_split(model, info: DatasetInfo, split: str, config: TrainerConfig) -> SplitScores:
    """Scores every example of ``split`` (eval batch size, no shuffling or augmentation)."""
    dataset = make_dataset(info, split, config, training=False, with_uid=True)
    uids: list[str] = []
    labels, scores = [], []
    for features, label, uid in dataset:
        scores.append(np.asarray(model.predict_on_batch(features), dtype=np.float64).reshape(-1))
        labels.append(label.numpy().reshape(-1).astype(np.int64))
        uids.extend(u.decode("utf-8") for u in uid.numpy())
    snr = snr_for(info, split, config, uids)
    return SplitScores(split, uids, np.concatenate(labels), np.concatenate(scores), snr)


def snr_for(info: DatasetInfo, split: str, config: TrainerConfig, uids: Sequence[str]) -> np.ndarray | None:
    """``evaluation.snr_column`` of the split's data tables per uid (empty -> 0); None without such a column."""
    tables = info.splits[split].tables
    column = config.evaluation.snr_column
    if not tables:
        return None
    rows = read_data_tables(tables)
    if not rows or column not in rows[0]:
        return None
    by_uid: dict[str, float] = {}
    for row in rows:
        text = (row.get(column) or "").strip()
        try:
            by_uid[row["uid"]] = float(text) if text else 0.0
        except ValueError:
            raise DatasetError(f"split {split}: data table '{column}' of uid {row['uid']} is {text!r}") from None
    missing = [u for u in uids if u not in by_uid]
    if missing:
        logger.warning("split %s: %d uid(s) not in the data tables, e.g. %s", split, len(missing), missing[:3])
    return np.array([by_uid.get(u, math.nan) for u in uids], dtype=np.float64)


def choose_threshold(val: SplitScores, config: TrainerConfig) -> float:
    """The decision threshold from val scores (``evaluation.threshold``)."""
    cfg = config.evaluation
    return M.choose_threshold(val.labels, val.scores, cfg.threshold, cfg.fixed_threshold)


def split_result(scores: SplitScores, threshold: float, config: TrainerConfig) -> SplitResult:
    """Metrics at ``threshold`` (plus efficiency vs SNR when the data tables have the SNR column)."""
    metrics = M.binary_metrics(scores.labels, scores.scores, threshold)
    efficiency = None
    if scores.snr is not None:
        efficiency = M.efficiency_vs_snr(
            scores.labels, scores.scores, scores.snr, threshold, config.evaluation.snr_bins
        )
        metrics["efficiency_vs_snr"] = efficiency
    return SplitResult(scores.split, scores.labels, scores.scores, metrics, efficiency)


def compare_metrics(saved: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, float]:
    """Absolute differences of the compared metrics (missing or NaN on both sides count as equal)."""
    diffs = {}
    for key in _COMPARED:
        a, b = saved.get(key), new.get(key)
        a = math.nan if a is None else float(a)
        b = math.nan if b is None else float(b)
        diffs[key] = 0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b)
    matrix_equal = saved.get("confusion_matrix") == [list(r) for r in new.get("confusion_matrix", [])]
    diffs["confusion_matrix"] = 0.0 if matrix_equal else math.inf
    return diffs


def load_run(run_dir: str) -> tuple[RunPaths, dict[str, Any], TrainerConfig]:
    """(paths, config JSON, resolved config) of a saved run."""
    paths = RunPaths.find(run_dir)
    saved = read_json(paths.config)
    if "config" not in saved:
        raise RunError(f"{paths.config} has no 'config' entry")
    return paths, saved, config_from_dict(saved["config"], paths.config)


def evaluate(data_dir: str, run_dir: str, split: str = "test", out_dir: str | None = None) -> dict[str, Any]:
    """Re-scores ``split`` with the run's saved model and threshold; writes metrics, scores and plots.

    Output goes to ``out_dir`` (default ``RUN_DIR/eval_{split}``). Returns the metrics JSON payload, which
    includes ``reproduces_saved`` (True when every compared metric is within 1e-5 of the run's metrics).
    """
    import keras

    import model.layers  # noqa: F401  (registers the custom layers for deserialization)

    paths, saved_config, config = load_run(run_dir)
    saved_metrics = read_json(paths.metrics) if _exists(paths.metrics) else None
    needs_val = saved_metrics is None and split != "val"
    info = check_dataset(data_dir, config, splits=[split, "val"] if needs_val else [split])
    if info.manifest_sha256 != saved_config.get("manifest", {}).get("sha256"):
        logger.warning("dataset manifest %s differs from the one this run was trained on", info.manifest_path)
    if not _exists(paths.model):
        raise RunError(f"saved model {paths.model} is missing")
    network = keras.saving.load_model(paths.model, compile=False)

    scores = predict_split(network, info, split, config)
    if saved_metrics is not None:
        threshold = float(saved_metrics["threshold"]["value"])
    else:
        logger.warning("%s is missing: choosing the threshold on val again", paths.metrics)
        threshold = choose_threshold(scores if split == "val" else predict_split(network, info, "val", config), config)
    result = split_result(scores, threshold, config)

    out_dir = out_dir or posixpath.join(paths.run_dir, f"eval_{split}")
    prefix = f"{paths.prefix}_eval_{split}"
    import tensorflow as tf

    tf.io.gfile.makedirs(out_dir)
    payload: dict[str, Any] = {
        "prefix": prefix,
        "run_dir": paths.run_dir,
        "data_dir": data_dir,
        "manifest_sha256": info.manifest_sha256,
        "manifest_matches_run": info.manifest_sha256 == saved_config.get("manifest", {}).get("sha256"),
        "threshold": {"value": threshold, "source": "saved" if saved_metrics else "val"},
        "splits": {split: result.metrics},
    }
    saved_split = (saved_metrics or {}).get("splits", {}).get(split)
    if saved_split is not None:
        diffs = compare_metrics(saved_split, result.metrics)
        payload["max_abs_diff_vs_saved"] = diffs
        payload["reproduces_saved"] = all(d <= _TOLERANCE for d in diffs.values())
        level = logging.INFO if payload["reproduces_saved"] else logging.WARNING
        logger.log(
            level,
            "re-evaluation of %s %s the saved metrics: %s",
            split,
            "reproduces" if payload["reproduces_saved"] else "DOES NOT reproduce",
            diffs,
        )
    write_json(posixpath.join(out_dir, f"{prefix}_metrics.json"), payload)
    write_scores_csv(posixpath.join(out_dir, f"scores_{split}.csv"), scores.uids, scores.labels, scores.scores)
    write_plots(
        posixpath.join(out_dir, "plots"),
        prefix,
        read_history_csv(paths.history),
        {split: result},
        focus=split,
        title=f"{paths.prefix}: re-evaluation on {split}",
    )
    logger.info("evaluation of %s on %s written to %s", paths.run_dir, split, out_dir)
    return payload


def _exists(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate",
        description="Re-evaluate a saved training run on one split of a normalized sigforge dataset: reload "
        "RUN/{prefix}.keras, score the split, apply the threshold saved in the run's metrics JSON and write "
        "metrics JSON, scores CSV and plots to RUN/eval_{split}/ (or --out).",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="dataset folder (local or gs://) holding manifest.json, "
        "stats/transformed_metadata/ and norm/{train,val,test}/ shards",
    )
    parser.add_argument("--run", required=True, help="run folder written by `python -m model.train`")
    parser.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="split to score (default: test)"
    )
    parser.add_argument("--out", default=None, help="output folder (default: RUN/eval_{split})")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 2 on a config/dataset/run error (logged, no traceback)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        payload = evaluate(args.data, args.run, args.split, args.out)
    except (ConfigError, DatasetError, RunError) as error:
        logger.error("%s", error)
        return 2
    metrics = payload["splits"][args.split]
    logger.info(
        "%s: ROC-AUC %s, PR-AUC %s, F1 %s at threshold %.4g",
        args.split,
        metrics["roc_auc"],
        metrics["pr_auc"],
        metrics["f1"],
        payload["threshold"]["value"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
