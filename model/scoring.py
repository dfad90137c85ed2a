"""A trained model's scores of one split and its metrics at a threshold: what training and re-evaluation share.

The decision threshold is chosen once, on val (``evaluation.threshold``), and applied unchanged to every split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.config import TrainerConfig
from model.data import DatasetInfo, make_dataset, read_data_tables
from model.errors import DatasetError
from model.plots import SplitResult
from transforms.evaluation import metrics as M

logger = logging.getLogger(__name__)


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
