"""The TCE table: star / TCE ids and one table row -> a validated ``Tce``.

Columns are named by ``TceConfig.columns``; units are fixed by the DR25 / SPOC tables: period in days, epoch
in days (the light curve's time system, or BJD with ``epoch_reference: bjd``), duration in hours. A bad row
raises ``RejectedInput`` with reason ``bad_period`` or ``bad_tce_parameters``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from transforms.contract import RejectedInput
from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.schema import (
    BAD_PERIOD,
    BAD_TCE,
    HOURS_PER_DAY,
    MISSING_DISPOSITION,
    UNKNOWN_DISPOSITION,
    Tce,
)


def normalize_id(text: Any) -> str:
    """A star / TCE id as text: whitespace stripped, integers without leading zeros (``"0011"``, ``"11.0"``)."""
    value = str(text).strip()
    if re.fullmatch(r"\d+", value):
        return str(int(value))
    if re.fullmatch(r"\d+\.0*", value):
        return str(int(float(value)))
    return value


def _finite_float(row: Mapping[str, str], column: str, what: str) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise RejectedInput(BAD_TCE, f"{what} column '{column}' is not a number: {row.get(column)!r}") from None
    return value


def parse_tce(row: Mapping[str, str], cfg: TceConfig) -> Tce:
    """One TCE-table row -> ``Tce``; raises RejectedInput (bad_period, bad_tce_parameters) naming the column."""
    cols = cfg.columns
    target_id = normalize_id(row.get(cols.target_id, ""))
    tce_id = normalize_id(row.get(cols.tce_id, ""))
    if not target_id or not tce_id:
        raise RejectedInput(BAD_TCE, f"empty target id '{cols.target_id}' or TCE id '{cols.tce_id}'")
    try:
        period = float(row[cols.period])
    except (TypeError, ValueError):
        period = float("nan")
    if not np.isfinite(period) or period <= 0:
        raise RejectedInput(
            BAD_PERIOD, f"period column '{cols.period}' must be a positive number of days, got {row.get(cols.period)!r}"
        )
    epoch = _finite_float(row, cols.epoch, "epoch")
    duration = _finite_float(row, cols.duration, "duration")
    if not np.isfinite(epoch):
        raise RejectedInput(BAD_TCE, f"epoch column '{cols.epoch}' is not finite: {row.get(cols.epoch)!r}")
    if not np.isfinite(duration) or duration <= 0 or duration / HOURS_PER_DAY >= period:
        raise RejectedInput(
            BAD_TCE, f"duration column '{cols.duration}' must be in (0, period) hours, got {row.get(cols.duration)!r}"
        )
    disposition = str(row.get(cols.label, "")).strip()
    label = disposition_label(disposition, cfg)
    return Tce(
        target_id=target_id,
        tce_id=tce_id,
        period_days=period,
        epoch=epoch,
        duration_hours=duration,
        disposition=disposition,
        label=label,
        row=dict(row),
        epoch_is_bjd=cfg.epoch_reference == "bjd",
    )


def disposition_label(disposition: str, cfg: TceConfig) -> int:
    """1 for a disposition in ``positive_labels``, 0 for a declared negative (or any other when
    ``negative_labels`` is null); an empty disposition is MISSING_DISPOSITION, an undeclared one UNKNOWN_DISPOSITION.
    """
    if not disposition:
        raise RejectedInput(MISSING_DISPOSITION, f"empty disposition column '{cfg.columns.label}' (never read as 0)")
    forms = {disposition.upper(), normalize_id(disposition).upper()}
    if forms & {p.strip().upper() for p in cfg.positive_labels}:
        return 1
    if cfg.negative_labels is None or forms & {n.strip().upper() for n in cfg.negative_labels}:
        return 0
    raise RejectedInput(
        UNKNOWN_DISPOSITION,
        f"disposition {disposition!r} is in neither tce.positive_labels {cfg.positive_labels} nor "
        f"tce.negative_labels {cfg.negative_labels}",
    )
