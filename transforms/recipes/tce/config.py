"""Config section of the light-curve recipe (``tce:``): FITS light curves + TCE table -> windows or views."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from transforms.config import _Strict


class TceColumns(_Strict):
    """Column names of the TCE table (DR25 / SPOC style); units are fixed: days, days, hours."""

    target_id: str = "target_id"  # star id (KIC / TIC), matched with the light curves' target id
    tce_id: str = "tce_plnt_num"  # TCE number within the target; tce_uid = "<target_id>-<tce_id>"
    period: str = "tce_period"  # orbital period, days
    epoch: str = "tce_time0bk"  # mid-time of a transit, days (see TceConfig.epoch_reference)
    duration: str = "tce_duration"  # transit duration, hours
    label: str = "label"  # disposition (PC, AFP, NTP, ...) or 0/1


class TceViewsConfig(_Strict):
    """Mode ``views``: AstroNet/ExoMiner-style phase-folded views per TCE."""

    global_bins: int = Field(301, ge=3)
    local_bins: int = Field(31, ge=3)
    # The local view spans +- this many transit durations around the transit (clipped to half a period).
    local_half_width_durations: float = Field(4.0, gt=0)
    odd_even: bool = True


class TceLightkurveConfig(_Strict):
    """Light curves written by lightkurve (``LightCurve.to_fits()``), read with the same config as SPOC files.

    A file is lightkurve's when its primary header's CREATOR names lightkurve or its ORIGIN is lightkurve's
    "Unofficial data product". For such a file only (docs/lightkurve.md):

    * the star id is the first of ``tce.header_keys`` then these ``header_keys`` (those not already listed)
      that holds a number, written plainly or after a catalogue prefix (``TIC 100100827``, ``KIC 11442793``);
    * ``flux_column`` / ``flux_err_column`` stand in for ``tce.flux_column`` / ``tce.flux_err_column`` when the
      file lacks those; a flux error that is NaN on every cadence (lightkurve's when none was given) is not used;
    * the first of ``quality_columns`` present stands in for a missing ``tce.quality_column``; a file with none
      of them keeps every cadence with finite time and flux;
    * without BJDREFI / BJDREFF, the time column's unit (btjd, bkjd) gives the BJD of time zero.
    """

    detect: bool = True  # false: lightkurve's files are read exactly as SPOC files (no fallbacks)
    header_keys: list[str] = ["TICID", "KEPLERID", "TARGETID", "OBJECT", "LABEL"]
    flux_column: str = "FLUX"
    flux_err_column: str = "FLUX_ERR"
    quality_columns: list[str] = ["QUALITY", "SAP_QUALITY"]


class TceConfig(_Strict):
    """Light-curve (TCE) recipe: FITS light curves + TCE table -> transit windows or phase-folded views."""

    mode: Literal["transits", "views"] = "transits"
    fits_glob: str = "**.fits"  # relative to --input; "**" also matches no folder
    tce_csv: str = "tces.csv"  # relative to --input (or an absolute / gs:// path)
    columns: TceColumns = TceColumns()
    # Dispositions (or label values) that make label 1; everything else is 0. Compared case-insensitively.
    positive_labels: list[str] = ["PC", "CP", "KP", "1"]
    # null: every non-empty disposition that is not positive is label 0. A list: the declared negatives; a
    # disposition in neither list is rejected (unknown_disposition). An empty disposition is always rejected.
    negative_labels: list[str] | None = None
    # "light_curve": epochs are in the light curve's time system (BKJD / BTJD); "bjd": full BJD, converted
    # with the FITS header's BJDREFI + BJDREFF.
    epoch_reference: Literal["light_curve", "bjd"] = "light_curve"
    # The star id: from the first header keyword present (primary header, then the table's), or the file name.
    target_id_source: Literal["header", "filename"] = "header"
    header_keys: list[str] = ["KEPLERID", "TICID"]
    filename_regex: str = r"^(?:kplr|tic|tess\d+-s\d+-)0*(\d+)"
    time_column: str = "TIME"
    flux_column: str = "PDCSAP_FLUX"
    flux_err_column: str | None = "PDCSAP_FLUX_ERR"
    quality_column: str | None = "SAP_QUALITY"
    # null: drop every cadence with a nonzero quality flag; an int: drop cadences with (flag & mask) != 0.
    quality_bitmask: int | None = None
    # Validation: a light curve needs this many valid cadences (finite, unflagged); its kept flux must be positive.
    min_valid_cadences: int = Field(20, ge=3)
    # Detrending: a robust (sigma-clipped) cubic spline per continuous segment, all TCEs' transits masked.
    gap_days: float = Field(0.5, gt=0)
    knot_spacing_days: float = Field(1.5, gt=0)
    clip_sigma: float = Field(3.0, gt=0)
    clip_iterations: int = Field(5, ge=1)
    # A transit's masked interval is mask_width_factor x its duration, centred on the mid-time.
    mask_width_factor: float = Field(1.5, ge=1.0)
    # Mode "transits": a window is window_durations x the TCE's duration wide, binned to n_bins.
    window_durations: float = Field(5.0, gt=1.0)
    n_bins: int = Field(100, ge=3)
    # Fraction of the expected cadences that must be present within the transit (else transit_in_gap) and
    # within the window (else window_low_coverage).
    min_transit_coverage: float = Field(0.5, ge=0.0, le=1.0)
    min_window_coverage: float = Field(0.5, ge=0.0, le=1.0)
    # Out-of-transit negatives per written transit window of each TCE, placed by sha256(oot_salt:tce_uid).
    oot_per_transit: float = Field(1.0, ge=0.0)
    oot_salt: str = "sigforge-oot"
    views: TceViewsConfig = TceViewsConfig()
    lightkurve: TceLightkurveConfig = TceLightkurveConfig()
