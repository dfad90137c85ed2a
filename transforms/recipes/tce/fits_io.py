"""Reading Kepler / TESS FITS light curves (astropy): FITS bytes -> a cleaned ``LightCurve``.

The light-curve table is the ``LIGHTCURVE`` HDU (else HDU 1); columns are named by ``TceConfig``. Output:
``time`` (n,) float64 days in the file's own system (BKJD / BTJD; ``bjd_ref`` = BJDREFI + BJDREFF is its BJD
zero), ``flux`` (n,) float64 relative flux (divided by the median of the kept cadences, so ~1), sorted by time,
flagged and non-finite cadences removed. Unusable files raise ``RejectedInput`` (unreadable_fits,
missing_columns, no_target_id, empty_light_curve).
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from transforms.contract import RejectedInput
from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.schema import (
    EMPTY_LIGHT_CURVE,
    MISSING_COLUMNS,
    NO_TARGET_ID,
    NON_POSITIVE_FLUX,
    NON_SCALAR_COLUMN,
    TOO_FEW_CADENCES,
    UNREADABLE_FITS,
    LightCurve,
)
from transforms.recipes.tce.tce_table import normalize_id

FITS_BLOCK = 2880  # bytes; every valid FITS file is a whole number of blocks


def target_id_from_filename(path: str, pattern: str) -> str | None:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    match = re.search(pattern, name)
    return normalize_id(match.group(1)) if match else None


def _open_table(data: bytes, path: str) -> tuple[list[fits.Header], list[str], Any]:
    """(headers [primary, table], column names, table data) of the light-curve HDU; RejectedInput if unreadable."""
    if not data or len(data) % FITS_BLOCK:
        raise RejectedInput(
            UNREADABLE_FITS, f"{len(data)} bytes is not a whole number of {FITS_BLOCK}-byte FITS blocks (truncated?)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                names = [h.name for h in hdul]
                hdu = hdul["LIGHTCURVE"] if "LIGHTCURVE" in names else hdul[1]
                if not isinstance(hdu, fits.BinTableHDU):
                    raise TypeError(f"HDU '{hdu.name}' is not a binary table")
                table = hdu.data
                columns = list(hdu.columns.names)
                loaded = {name: np.array(table[name]) for name in columns}
                return [hdul[0].header.copy(), hdu.header.copy()], columns, loaded
    except (OSError, ValueError, TypeError, IndexError, KeyError) as error:
        raise RejectedInput(UNREADABLE_FITS, f"not a readable FITS light curve: {error}") from None


def _column(table: dict[str, np.ndarray], name: str, dtype: type) -> np.ndarray:
    """One scalar-per-cadence column as ``dtype``; a vector column (shape (n, k)) is NON_SCALAR_COLUMN."""
    value = np.asarray(table[name])
    if value.ndim != 1:
        raise RejectedInput(
            NON_SCALAR_COLUMN, f"column '{name}' has shape {value.shape}; expected one value per cadence"
        )
    try:
        return value.astype(dtype)
    except (TypeError, ValueError) as error:
        raise RejectedInput(UNREADABLE_FITS, f"column '{name}' ({value.dtype}) is not numeric: {error}") from None


def read_light_curve(data: bytes, path: str, cfg: TceConfig) -> LightCurve:
    """FITS bytes -> cleaned ``LightCurve``; raises RejectedInput (unreadable_fits, missing_columns, ...).

    Cleaning: drops cadences whose quality flag is set (any bit, or ``cfg.quality_bitmask``), or whose time,
    flux or flux error is not finite; divides the flux by the median of the kept cadences.
    """
    headers, columns, table = _open_table(data, path)
    wanted = [cfg.time_column, cfg.flux_column, cfg.flux_err_column, cfg.quality_column]
    missing = [c for c in wanted if c is not None and c not in columns]
    if missing:
        raise RejectedInput(MISSING_COLUMNS, f"light-curve table lacks {missing} (has {columns})")
    if cfg.target_id_source == "header":
        found = (h[k] for k in cfg.header_keys for h in headers if k in h and str(h[k]).strip())
        target_id = normalize_id(next(found, ""))
    else:
        target_id = target_id_from_filename(path, cfg.filename_regex) or ""
    if not target_id:
        raise RejectedInput(
            NO_TARGET_ID, f"no target id (source {cfg.target_id_source}: keys {cfg.header_keys} / {cfg.filename_regex})"
        )
    time = _column(table, cfg.time_column, np.float64)
    flux = _column(table, cfg.flux_column, np.float64)
    good = np.isfinite(time) & np.isfinite(flux)
    if cfg.flux_err_column is not None:
        good &= np.isfinite(_column(table, cfg.flux_err_column, np.float64))
    if cfg.quality_column is not None:
        quality = _column(table, cfg.quality_column, np.int64)
        good &= (quality == 0) if cfg.quality_bitmask is None else (quality & cfg.quality_bitmask) == 0
    if not good.any():
        raise RejectedInput(EMPTY_LIGHT_CURVE, f"0 valid cadences out of {len(time)}")
    if good.sum() < cfg.min_valid_cadences:
        raise RejectedInput(
            TOO_FEW_CADENCES,
            f"{int(good.sum())} valid cadences out of {len(time)}, fewer than tce.min_valid_cadences="
            f"{cfg.min_valid_cadences}",
        )
    non_positive = int((flux[good] <= 0).sum())
    if non_positive:
        raise RejectedInput(NON_POSITIVE_FLUX, f"{non_positive} of {int(good.sum())} valid cadences have flux <= 0")
    median = np.median(flux[good])
    if not np.isfinite(1.0 / median) or not np.isfinite(flux[good] / median).all():
        raise RejectedInput(NON_POSITIVE_FLUX, f"median flux {median} cannot normalize the light curve")
    order = np.argsort(time[good], kind="stable")
    bjd_ref = sum(float(h.get(k, 0.0)) for k in ("BJDREFI", "BJDREFF") for h in headers[1:])
    return LightCurve(
        path=path,
        target_id=target_id,
        time=time[good][order],
        flux=flux[good][order] / median,
        bjd_ref=bjd_ref,
        n_cadences=len(time),
        mission=str(headers[0].get("MISSION", headers[0].get("TELESCOP", ""))).strip(),
    )
