"""Scoring and metrics of a trained model; ``python -m model.evaluate`` re-evaluates a saved run.

The decision threshold is chosen once, on val (``evaluation.threshold``), and applied unchanged to every split.
Re-evaluation reloads ``{prefix}.keras``, scores a split again, applies the saved threshold and writes
``RUN_DIR/eval_{split}/`` (metrics JSON, scores CSV, plots); the metrics must reproduce the saved ones.

With ``--baseline SCORES_CSV`` (e.g. the ``scores.csv`` of ``sigforge baseline matched-filter``) the CNN and the
baseline are compared on the same examples (the split's uids that have a baseline score, joined by uid = sample
id): both ROC curves on one plot, both efficiency-vs-SNR curves at fixed false-alarm probabilities (each search's
threshold from its own scores of the same noise examples) on another, and in the metrics JSON under
``baseline``: both AUCs and efficiencies and the sensitivity ratio CNN efficiency / baseline efficiency per FAP
and SNR bin.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import posixpath
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model import detection
from model import metrics as M
from model.artifacts import RunPaths, read_history_csv, read_json, write_json, write_scores_csv
from model.cli_common import add_log_level, setup_logging
from model.config import TrainerConfig, config_from_dict
from model.data import DatasetInfo, check_dataset, make_dataset, read_data_tables
from model.errors import DatasetError, RunError
from model.plots import SplitResult, write_comparison_plots, write_plots
from transforms.config import ConfigError
from transforms.csv_cells import restore_row

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


@dataclass(frozen=True)
class BaselineScores:
    """A baseline's per-example output keyed by uid: ``score`` float, ``label`` int or None, ``snr`` float (NaN
    when the CSV has none)."""

    path: str
    score: dict[str, float]
    label: dict[str, int | None]
    snr: dict[str, float]


def read_baseline_scores(path: str) -> BaselineScores:
    """Reads a baseline scores CSV: an ``id`` (or ``uid``) column and ``score``; ``label`` and ``snr`` optional.

    Raises RunError on a missing file, missing columns or a non-numeric / non-finite score.
    """
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise RunError(f"baseline scores {path} not found")
    with tf.io.gfile.GFile(path, "r") as handle:
        reader = csv.DictReader(io.StringIO(handle.read()))
        rows = [restore_row(row) for row in reader]  # written spreadsheet-safe (transforms.csv_cells)
        columns = reader.fieldnames or []
    key = "id" if "id" in columns else "uid" if "uid" in columns else None
    if key is None or "score" not in columns:
        raise RunError(f"baseline scores {path} need an 'id' (or 'uid') and a 'score' column, got {columns}")
    out = BaselineScores(path, {}, {}, {})
    for row in rows:
        uid = row[key].strip()
        try:
            score = float(row["score"])
        except ValueError:
            raise RunError(f"{path}: score of {uid} is {row['score']!r}") from None
        if not math.isfinite(score):
            raise RunError(f"{path}: score of {uid} is not finite")
        label_text = (row.get("label") or "").strip()
        snr_text = (row.get("snr") or "").strip()
        out.score[uid] = score
        out.label[uid] = int(float(label_text)) if label_text else None
        out.snr[uid] = float(snr_text) if snr_text else math.nan
    return out


def compare_with_baseline(
    scores: SplitScores,
    baseline: BaselineScores,
    config: TrainerConfig,
    plot_dir: str,
    prefix: str,
    name: str = "matched filter",
    faps: Sequence[float] = detection.DEFAULT_FAPS,
) -> dict[str, Any]:
    """CNN vs baseline on the split's uids that have a baseline score (module doc); writes the two comparison
    plots into ``plot_dir`` and returns the ``baseline`` entry of the metrics JSON.

    SNR bins are ``evaluation.snr_bins`` over the compared positives' injected SNR (the data tables' column, or
    the baseline CSV's ``snr`` where the tables have none), shared by both searches. Raises RunError when no uid
    of the split has a baseline score.
    """
    uids = scores.uids
    common = [i for i, uid in enumerate(uids) if uid in baseline.score]
    missing = [uid for uid in uids if uid not in baseline.score]
    if missing:
        logger.warning(
            "%d of %d %s uid(s) have no baseline score in %s (e.g. %s); comparing on the other %d",
            len(missing),
            len(uids),
            scores.split,
            baseline.path,
            missing[:3],
            len(common),
        )
    if not common:
        raise RunError(f"no {scores.split} uid has a score in {baseline.path} (is it the same raw data?)")
    labels = scores.labels[common]
    cnn = scores.scores[common]
    base = np.array([baseline.score[uids[i]] for i in common], dtype=np.float64)
    mismatched = [uids[i] for i in common if baseline.label[uids[i]] not in (None, int(scores.labels[i]))]
    if mismatched:
        logger.warning(
            "%d compared uid(s) have a different label in %s, e.g. %s", len(mismatched), baseline.path, mismatched[:3]
        )
    snr = scores.snr[common] if scores.snr is not None else np.full(len(common), math.nan)
    from_baseline = np.array([baseline.snr[uids[i]] for i in common], dtype=np.float64)
    snr = np.where(np.isfinite(snr), snr, from_baseline)
    injected = (labels == 1) & np.isfinite(snr) & (snr > 0)
    edges = M.snr_bin_edges(snr[injected], config.evaluation.snr_bins) if injected.any() else None
    snr_arg = snr if edges is not None else None
    cnn_eff = detection.efficiency_at_fap(labels, cnn, snr_arg, faps, edges if edges is not None else 1)
    base_eff = detection.efficiency_at_fap(labels, base, snr_arg, faps, edges if edges is not None else 1)
    cnn_auc, base_auc = M.roc_auc(labels, cnn), M.roc_auc(labels, base)
    title = f"[{scores.split}, {len(common)} examples]"
    plots = write_comparison_plots(
        plot_dir,
        prefix,
        [("CNN", labels, cnn), (name, labels, base)],
        [("CNN", cnn_eff), (name, base_eff)],
        title,
    )
    return {
        "name": name,
        "scores_csv": baseline.path,
        "n_split": len(uids),
        "n_compared": len(common),
        "n_missing_baseline": len(missing),
        "missing_examples": missing[:10],
        "n_label_mismatches": len(mismatched),
        "n_positive": int(labels.sum()),
        "n_negative": int((labels == 0).sum()),
        "cnn": {"roc_auc": cnn_auc, "efficiency_at_fap": cnn_eff},
        "baseline": {"roc_auc": base_auc, "efficiency_at_fap": base_eff},
        "roc_auc_ratio": cnn_auc / base_auc if base_auc else math.nan,
        "sensitivity_ratio": detection.sensitivity_ratio(cnn_eff, base_eff),
        "plots": plots,
    }


def evaluate(
    data_dir: str,
    run_dir: str,
    split: str = "test",
    out_dir: str | None = None,
    baseline: str | None = None,
    baseline_name: str = "matched filter",
) -> dict[str, Any]:
    """Re-scores ``split`` with the run's saved model and threshold; writes metrics, scores and plots.

    Output goes to ``out_dir`` (default ``RUN_DIR/eval_{split}``). Returns the metrics JSON payload, which
    includes ``reproduces_saved`` (True when every compared metric is within 1e-5 of the run's metrics) and,
    with ``baseline`` (a scores CSV, see :func:`read_baseline_scores`), the comparison of
    :func:`compare_with_baseline` under ``baseline``.
    """
    baseline_scores = read_baseline_scores(baseline) if baseline is not None else None
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
    if baseline_scores is not None:
        payload["baseline"] = compare_with_baseline(
            scores, baseline_scores, config, posixpath.join(out_dir, "plots"), prefix, baseline_name
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
        "--baseline",
        default=None,
        metavar="SCORES_CSV",
        help="also compare with a baseline's per-example scores (id,label,score[,snr] CSV, e.g. the scores.csv of "
        "`sigforge baseline matched-filter` on the same raw data): joint ROC and efficiency-vs-SNR plots and the "
        "sensitivity ratio CNN / baseline and SNR at 50 %% efficiency at FAP 0.1, 0.01, 0.001 per SNR bin in the "
        "metrics JSON",
    )
    parser.add_argument(
        "--baseline-name", default="matched filter", help="the baseline's name in plots (default: matched filter)"
    )
    add_log_level(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 2 on a config/dataset/run error (logged, no traceback)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        payload = evaluate(args.data, args.run, args.split, args.out, args.baseline, args.baseline_name)
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
    if "baseline" in payload:
        _log_comparison(payload["baseline"])
    return 0


def _log_comparison(entry: Mapping[str, Any]) -> None:
    logger.info(
        "CNN vs %s on %d examples: ROC-AUC %.4f vs %.4f",
        entry["name"],
        entry["n_compared"],
        _nan(entry["cnn"]["roc_auc"]),
        _nan(entry["baseline"]["roc_auc"]),
    )
    for key, ratio in entry["sensitivity_ratio"].items():
        cells = ", ".join(
            f"SNR {b['snr_low']:.1f}-{b['snr_high']:.1f}: {_nan(b['numerator']):.2f}/{_nan(b['denominator']):.2f}"
            for b in ratio["bins"]
        )
        logger.info(
            "FAP %s efficiency CNN/%s overall %.3f/%.3f (ratio %.3f), SNR at 50%% %.2f/%.2f; %s",
            key,
            entry["name"],
            _nan(entry["cnn"]["efficiency_at_fap"][key]["efficiency"]),
            _nan(entry["baseline"]["efficiency_at_fap"][key]["efficiency"]),
            _nan(ratio["overall"]),
            *(_nan(v) for v in ratio["snr_at_50pct"]),
            cells or "no SNR bins",
        )


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


if __name__ == "__main__":
    sys.exit(main())
