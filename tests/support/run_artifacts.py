"""Readers of a run folder's files for the tests (the trainer only writes them)."""

from __future__ import annotations

import csv

import numpy as np


def read_scores_csv(path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(uids, labels int64, scores float64) of a run's ``scores_{split}.csv``."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (
        [r["uid"] for r in rows],
        np.array([int(r["label"]) for r in rows], dtype=np.int64),
        np.array([float(r["score"]) for r in rows], dtype=np.float64),
    )


def load_weights_npz(path: str) -> list[np.ndarray]:
    """The arrays of a run's ``{prefix}_weights.npz`` in saved order (keys ``{index:03d}_{variable path}``)."""
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files)]
