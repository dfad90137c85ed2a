"""The trainer's name for :mod:`transforms.evaluation.metrics` (moved there so that the matched-filter baseline in
``beam_pipelines`` shares it without importing ``model``); new code imports it from ``transforms``."""

from transforms.evaluation.metrics import (
    average_precision,
    binary_metrics,
    choose_threshold,
    confusion_matrix,
    efficiency_vs_snr,
    jsonable,
    log_loss,
    precision_recall_curve,
    roc_auc,
    roc_curve,
    snr_bin_edges,
)

__all__ = [
    "average_precision",
    "binary_metrics",
    "choose_threshold",
    "confusion_matrix",
    "efficiency_vs_snr",
    "jsonable",
    "log_loss",
    "precision_recall_curve",
    "roc_auc",
    "roc_curve",
    "snr_bin_edges",
]
