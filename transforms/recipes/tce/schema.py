"""Shared records and names of the light-curve (TCE) recipe: the dataclasses passed between its modules, the
rejection reasons, the stored feature names and the data-table columns.

Units: times and TCE epochs are days (Kepler BKJD / TESS BTJD), TCE periods days and durations hours, flux
relative (``LightCurve.flux`` ~1; examples carry relative flux minus one). Shapes: ``LightCurve.time`` and
``.flux`` are (n,) float64; ``TceExample.arrays`` maps each feature name to its 1-D float array (stored as
float32 bytes), of the lengths given by ``target.feature_lengths``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transforms.provenance import SOURCE_COLUMNS, SOURCE_ROWS
from transforms.recipes.tce.config import TceConfig

# Reasons an input is dropped (the keys of the manifest's ``rejected`` counts).
UNREADABLE_FITS = "unreadable_fits"
MISSING_COLUMNS = "missing_columns"
NO_TARGET_ID = "no_target_id"
EMPTY_LIGHT_CURVE = "empty_light_curve"
NON_SCALAR_COLUMN = "non_scalar_column"
NON_POSITIVE_FLUX = "non_positive_flux"
TOO_FEW_CADENCES = "too_few_valid_cadences"
MISSING_DISPOSITION = "missing_disposition"
UNKNOWN_DISPOSITION = "unknown_disposition"
NON_FINITE_AFTER_CAST = "non_finite_after_cast"
NOT_A_REGULAR_FILE = "not_a_regular_file"
BAD_PERIOD = "bad_period"
BAD_TCE = "bad_tce_parameters"
DUPLICATE_TCE = "duplicate_tce"
TCE_WITHOUT_LIGHT_CURVE = "tce_without_light_curve"
LIGHT_CURVE_WITHOUT_TCE = "light_curve_without_tce"
NO_TRANSIT_OBSERVED = "no_transit_observed"
TRANSIT_IN_GAP = "transit_in_gap"
WINDOW_LOW_COVERAGE = "window_low_coverage"
OVERLAPS_POSITIVE = "overlaps_positive_transit"
NO_ROOM_FOR_OOT = "no_room_for_out_of_transit"
UNRESOLVED_TRANSIT = "transit_shorter_than_cadence"

HOURS_PER_DAY = 24.0

# Stored feature names (raw shards store them as float32 bytes).
FLUX_WINDOW = "flux_window"
GLOBAL_VIEW, LOCAL_VIEW = "global_view", "local_view"
LOCAL_VIEW_ODD, LOCAL_VIEW_EVEN = "local_view_odd", "local_view_even"
KIND_TRANSIT, KIND_OOT, KIND_VIEW = "transit", "oot", "views"


# Data-table columns of each mode (docs/ARCHITECTURE.md section 3: after uid,target_id,label,shard).
TRANSIT_TABLE_COLUMNS = (
    "tce_uid",
    "kind",
    "disposition",
    "period_days",
    "duration_hours",
    "midtime",
    "window_coverage",
    "transit_coverage",
    "n_overlapping_transits",
)
VIEW_TABLE_COLUMNS = (
    "tce_uid",
    "kind",
    "disposition",
    "period_days",
    "duration_hours",
    "epoch",
    "n_transits",
    "n_odd",
    "n_even",
)
PROVENANCE_COLUMNS = (*SOURCE_COLUMNS, SOURCE_ROWS)  # after the TCE table's (transforms/provenance.py)
RESERVED_COLUMNS = frozenset(
    ("uid", "target_id", "label", "shard", *TRANSIT_TABLE_COLUMNS, *VIEW_TABLE_COLUMNS, *PROVENANCE_COLUMNS)
)


# ---- records -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightCurve:
    """One cleaned FITS light curve (one quarter / sector).

    ``time``: (n,) float64 days (BKJD / BTJD); ``flux``: (n,) float64 relative flux (divided by the file's median
    of valid cadences, so ~1); only cadences with a zero (masked) quality flag and finite values are kept.
    Provenance: ``rows`` (n,) the 0-based row of each kept cadence in the file's light-curve table (None: 0..n-1),
    ``source`` the file as the data tables name it (its path relative to the build's input; "": ``path``),
    ``sha256`` the file's digest.
    """

    path: str
    target_id: str
    time: np.ndarray
    flux: np.ndarray
    bjd_ref: float  # BJD of time zero (BJDREFI + BJDREFF), days
    n_cadences: int  # rows in the file, before cleaning
    mission: str = ""
    rows: np.ndarray | None = None
    source: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class Tce:
    """One validated TCE row. ``epoch`` is in the light curve's time system unless ``epoch_is_bjd``."""

    target_id: str
    tce_id: str
    period_days: float
    epoch: float
    duration_hours: float
    disposition: str
    label: int
    row: Mapping[str, str] = field(default_factory=dict)
    epoch_is_bjd: bool = False

    @property
    def tce_uid(self) -> str:
        return f"{self.target_id}-{self.tce_id}"

    @property
    def duration_days(self) -> float:
        return self.duration_hours / HOURS_PER_DAY


@dataclass(frozen=True)
class Drop:
    """An input (file, TCE, transit, out-of-transit slot) that did not become an example, and why."""

    what: str
    reason: str
    detail: str


def unresolved_transit(tce: Tce, cadence_days: float) -> Drop | None:
    """A Drop when ``tce``'s transit is shorter than one cadence of its light curve: no window or view can
    resolve it (a sub-cadence TCE would give windows of one cadence interpolated over every bin); else None."""
    if cadence_days > 0 and tce.duration_days < cadence_days:
        return Drop(
            tce.tce_uid,
            UNRESOLVED_TRANSIT,
            f"duration {tce.duration_hours:.3g} h is shorter than the light curve's cadence "
            f"{cadence_days * HOURS_PER_DAY:.3g} h",
        )
    return None


@dataclass(frozen=True)
class TceExample:
    """One example: float arrays (each stored as float32 bytes) plus its data-table row and, apart, the row's
    provenance columns (``sources``: ``PROVENANCE_COLUMNS``, sources.py)."""

    uid: str
    target_id: str
    tce_uid: str
    label: int
    arrays: dict[str, np.ndarray]
    row: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)


# ---- data-table rows ---------------------------------------------------------------------------------------------


def table_column(name: str) -> str:
    """A TCE-table column's name in the data tables: prefixed with ``csv_`` where it clashes with ours."""
    return f"csv_{name}" if name in RESERVED_COLUMNS else name


def tce_row(tce: Tce, cfg: TceConfig) -> dict[str, Any]:
    """The TCE-table row as data-table columns (the label column becomes ``disposition``)."""
    skip = {cfg.columns.target_id, cfg.columns.label}
    row = {table_column(k): v for k, v in tce.row.items() if k not in skip}
    row.update(
        tce_uid=tce.tce_uid,
        disposition=tce.disposition,
        period_days=tce.period_days,
        duration_hours=tce.duration_hours,
    )
    return row
