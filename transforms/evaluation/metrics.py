"""Binary-classification metrics in numpy (no sklearn): ROC/PR curves, AUCs, thresholded scores, SNR efficiency.

Conventions: ``labels`` are 0/1 of shape (n,), ``scores`` are floats of shape (n,) where larger means "more
positive", and an example is predicted positive when ``score >= threshold``. Tied scores are handled as one
operating point (a diagonal ROC segment), so the ROC-AUC equals the Mann-Whitney U statistic with ties counted
as one half. Undefined values (e.g. an AUC on a split with one class) are NaN; :func:`jsonable` turns them into
``null`` for the metrics JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_arrays(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray):
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if np.any((y != 0) & (y != 1)):
        raise ValueError(f"labels must be 0 or 1, got values {sorted(set(y.tolist()))}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    return y, s


def _cumulative_counts(y: np.ndarray, s: np.ndarray):
    """True/false positives at each distinct threshold, thresholds descending: (tps, fps, thresholds)."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores: all tied examples switch to positive together.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), s_sorted[last]


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0) with threshold +inf; NaN rates when a class is absent."""
    y, s = _as_arrays(labels, scores)
    if y.size == 0:
        return np.array([0.0]), np.array([0.0]), np.array([np.inf])
    tps, fps, thresholds = _cumulative_counts(y, s)
    n_pos, n_neg = tps[-1], fps[-1]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / n_neg if n_neg > 0 else np.full_like(fps, np.nan)
        tpr = tps / n_pos if n_pos > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (trapezoids; ties count one half). NaN unless both classes are present."""
    y, _ = _as_arrays(labels, scores)
    if y.size == 0 or y.min() == y.max():
        return math.nan
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at each distinct score, thresholds descending (recall increasing)."""
    y, s = _as_arrays(labels, scores)
    if y.size == 0:
        return np.array([]), np.array([]), np.array([])
    tps, fps, thresholds = _cumulative_counts(y, s)
    n_pos = tps[-1]
    precision = tps / (tps + fps)
    recall = tps / n_pos if n_pos > 0 else np.full_like(tps, np.nan)
    return precision, recall, thresholds


def average_precision(labels, scores) -> float:
    """PR-AUC as average precision: sum over thresholds of (recall step) x precision. NaN without positives."""
    y, _ = _as_arrays(labels, scores)
    if y.size == 0 or y.max() == 0:
        return math.nan
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def confusion_matrix(labels, predictions) -> np.ndarray:
    """2x2 int matrix [[tn, fp], [fn, tp]] (rows: true label, columns: predicted label)."""
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    p = np.asarray(predictions).astype(np.int64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {y.shape[0]} vs {p.shape[0]}")
    matrix = np.zeros((2, 2), dtype=np.int64)
    np.add.at(matrix, (y, p), 1)
    return matrix


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def choose_threshold(labels, scores, method: str = "max_f1", fixed: float = 0.5) -> float:
    """Decision threshold from one split's scores: ``max_f1``, ``youden`` (max TPR - FPR) or ``fixed``.

    Candidate thresholds are the distinct scores; among equally good ones the highest is kept. Falls back to
    ``fixed`` when the split lacks a class (the criterion is undefined).
    """
    if method == "fixed":
        return float(fixed)
    y, s = _as_arrays(labels, scores)
    if y.size == 0 or y.min() == y.max():
        return float(fixed)
    if method == "max_f1":
        tps, fps, thresholds = _cumulative_counts(y, s)
        fns = tps[-1] - tps
        f1 = 2 * tps / (2 * tps + fps + fns)
        return float(thresholds[_first_max(f1)])
    if method == "youden":
        fpr, tpr, thresholds = roc_curve(y, s)
        j = (tpr - fpr)[1:]
        return float(thresholds[1:][_first_max(j)])
    raise ValueError(f"unknown threshold method {method!r} (max_f1, youden, fixed)")


def _first_max(values: np.ndarray, tol: float = 1e-12) -> int:
    """Index of the first maximum, treating values within ``tol`` of it as equal (float round-off)."""
    return int(np.flatnonzero(values >= values.max() - tol)[0])


def log_loss(labels, scores, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities ``scores`` (clipped to [eps, 1 - eps])."""
    y, s = _as_arrays(labels, scores)
    if y.size == 0:
        return math.nan
    p = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def binary_metrics(labels, scores, threshold: float) -> dict[str, Any]:
    """Ranking metrics (ROC-AUC, PR-AUC) plus thresholded ones at ``score >= threshold``."""
    y, s = _as_arrays(labels, scores)
    matrix = confusion_matrix(y, s >= threshold)
    (tn, fp), (fn, tp) = matrix.tolist()
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "n_examples": int(y.size),
        "n_positive": int(y.sum()),
        "n_negative": int(y.size - y.sum()),
        "roc_auc": roc_auc(y, s),
        "pr_auc": average_precision(y, s),
        "log_loss": log_loss(y, s),
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, y.size),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "specificity": _ratio(tn, tn + fp),
        "false_positive_rate": _ratio(fp, fp + tn),
        "confusion_matrix": matrix.tolist(),
    }


def snr_bin_edges(snr: np.ndarray, bins: int | Sequence[float]) -> np.ndarray:
    """Bin edges: explicit ``bins`` edges, or ``bins`` equal-count bins over ``snr`` (duplicates merged)."""
    if not isinstance(bins, int):
        return np.asarray(bins, dtype=np.float64)
    if snr.size == 0:
        return np.array([], dtype=np.float64)
    edges = np.unique(np.quantile(snr, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    return edges


def efficiency_vs_snr(labels, scores, snr, threshold: float, bins: int | Sequence[float] = 6) -> dict[str, Any]:
    """Detection efficiency and ROC-AUC per SNR bin of the injected (positive) examples.

    Positives are ``label == 1`` with a finite ``snr > 0``; every bin is scored against all negatives
    (``label == 0``), so the per-bin AUC answers "how well is a signal of this loudness told apart from noise".
    Efficiency = fraction of the bin's positives with ``score >= threshold``; the false-alarm rate is that
    fraction among the negatives. Bins are closed on the left, the last one also on the right.
    """
    y, s = _as_arrays(labels, scores)
    snr = np.asarray(snr, dtype=np.float64).reshape(-1)
    if snr.shape != y.shape:
        raise ValueError(f"snr and labels differ in length: {snr.shape[0]} vs {y.shape[0]}")
    negative = y == 0
    injected = (y == 1) & np.isfinite(snr) & (snr > 0)
    edges = snr_bin_edges(snr[injected], bins)
    neg_scores = s[negative]
    rows = []
    n_binned = 0
    for i in range(max(edges.size - 1, 0)):
        lo, hi = edges[i], edges[i + 1]
        last = i == edges.size - 2
        in_bin = injected & (snr >= lo) & ((snr <= hi) if last else (snr < hi))
        pos_scores = s[in_bin]
        n_binned += int(in_bin.sum())
        bin_labels = np.r_[np.zeros(neg_scores.size), np.ones(pos_scores.size)]
        rows.append(
            {
                "snr_low": float(lo),
                "snr_high": float(hi),
                "snr_median": float(np.median(snr[in_bin])) if pos_scores.size else math.nan,
                "n_positive": int(pos_scores.size),
                "efficiency": float(np.mean(pos_scores >= threshold)) if pos_scores.size else math.nan,
                "roc_auc": roc_auc(bin_labels, np.r_[neg_scores, pos_scores]),
            }
        )
    return {
        "threshold": float(threshold),
        "n_negative": int(negative.sum()),
        "false_alarm_rate": float(np.mean(neg_scores >= threshold)) if neg_scores.size else math.nan,
        "n_positive_with_snr": int(injected.sum()),
        "n_positive_without_snr": int(((y == 1) & ~injected).sum()),
        "n_positive_outside_bins": int(injected.sum()) - n_binned,
        "bins": rows,
    }


def jsonable(value: Any) -> Any:
    """Recursively converts numpy scalars/arrays to Python and NaN/inf to None, for ``json.dumps``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
