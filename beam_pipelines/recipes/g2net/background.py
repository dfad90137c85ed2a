"""Backgrounds of ``sigforge baseline matched-filter``: noise-only (or glitchy) raw folders scored with the same bank
and PSD as the foreground, and truth-table columns (the injections' distance) by sample id."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.recipes.g2net.scoring import list_samples, score_with_beam

_LOG = logging.getLogger(__name__)


def score_background(folder, bank, psd, cfg, out_dir, workers, labels_csv, npy_glob) -> list[dict[str, Any]]:
    """Score rows of every labelled file of a background folder (its label-1 files, if any, are left out)."""
    samples, rejects = list_samples(folder, labels_csv, npy_glob, None)
    noise = [s for s in samples if s.label == 0]
    _LOG.info("matched filter: background %s: %d noise files (%d inputs rejected)", folder, len(noise), len(rejects))
    rows, failed = score_with_beam(noise, bank, psd, cfg, out_dir.rstrip("/") + ".background", workers)
    if not rows:
        raise StageError(f"no file of the background {folder} could be scored ({len(failed)} rejected)")
    return rows


def truth_column(data_dir: str, injections_csv: str | None, column: str, ids: Sequence[str]) -> np.ndarray | None:
    """``column`` of the truth table per id (NaN where empty), or None without the table or the column."""
    path = fs.join(data_dir, injections_csv) if injections_csv else None
    if path is None or not fs.exists(path):
        return None
    rows = list(csv.DictReader(io.StringIO(fs.read_text(path))))
    if not rows or column not in rows[0]:
        return None
    values = {}
    for row in rows:
        try:
            values[row["id"].strip()] = float(row[column]) if row[column].strip() else math.nan
        except ValueError:
            values[row["id"].strip()] = math.nan
    return np.array([values.get(i, math.nan) for i in ids], dtype=np.float64)
