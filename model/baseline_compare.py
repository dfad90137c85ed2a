"""The CNN against a classical baseline on the same examples (``python -m model.evaluate --baseline``).

The baseline's per-example scores (e.g. the ``scores.csv`` of ``sigforge baseline matched-filter``) are joined to
the split's by uid = sample id: both ROC curves on one plot, both efficiency-vs-SNR curves at fixed false-alarm
probabilities (each search's threshold from its own scores of the same noise examples) on another, and in the
metrics JSON under ``baseline``: both AUCs and efficiencies and the sensitivity ratio CNN efficiency / baseline
efficiency per FAP and SNR bin.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.config import TrainerConfig
from model.errors import RunError
from model.plots import write_comparison_plots
from model.scoring import SplitScores
from transforms.csv_cells import restore_row
from transforms.evaluation import detection
from transforms.evaluation import metrics as M

logger = logging.getLogger(__name__)


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


def log_comparison(entry: Mapping[str, Any]) -> None:
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
