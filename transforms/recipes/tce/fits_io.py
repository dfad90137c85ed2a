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
from collections.abc import Callable
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


# Bytes per element of each binary-table TFORM code (X: bits, rounded up per column below).
_TFORM_BYTES = {
    "L": 1,
    "X": 1,
    "B": 1,
    "I": 2,
    "J": 4,
    "K": 8,
    "A": 1,
    "E": 4,
    "D": 8,
    "C": 8,
    "M": 16,
    "P": 8,
    "Q": 16,
}
_SIMPLE_DTYPES = {"B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_TFORM = re.compile(r"\s*(\d*)([A-Z])")


def _columns_from_bytes(header: fits.Header, data: bytes, offset: int, wanted: list[str]) -> dict[str, np.ndarray]:
    """The ``wanted`` columns of a binary table straight from the file bytes, as strided views (no copy of the
    other columns); ``offset`` is the table's first data byte. Only plain numeric scalar columns without
    TSCAL / TZERO are read this way; any other wanted column raises LookupError (read it with astropy instead).
    """
    rows, row_bytes = int(header["NAXIS2"]), int(header["NAXIS1"])
    if offset + rows * row_bytes > len(data):
        raise ValueError(f"table data end at byte {offset + rows * row_bytes}, the file has {len(data)}")
    out: dict[str, np.ndarray] = {}
    position = 0
    for i in range(1, int(header["TFIELDS"]) + 1):
        match = _TFORM.match(str(header[f"TFORM{i}"]))
        if match is None or match.group(2) not in _TFORM_BYTES:
            raise LookupError(f"TFORM{i}")
        repeat, code = int(match.group(1) or 1), match.group(2)
        size = (repeat + 7) // 8 if code == "X" else repeat * _TFORM_BYTES[code]
        name = str(header.get(f"TTYPE{i}", "")).strip()
        if name in wanted:
            scaled = float(header.get(f"TSCAL{i}", 1.0)) != 1.0 or float(header.get(f"TZERO{i}", 0.0)) != 0.0
            if repeat != 1 or code not in _SIMPLE_DTYPES or scaled:
                raise LookupError(name)
            out[name] = np.ndarray(
                (rows,), _SIMPLE_DTYPES[code], buffer=data, offset=offset + position, strides=(row_bytes,)
            )
        position += size
    if position != row_bytes:
        raise LookupError(f"columns take {position} bytes of a {row_bytes}-byte row")
    return out


def _open_table(data: bytes, path: str, wanted: list[str]) -> tuple[list[fits.Header], list[str], dict[str, Any]]:
    """(headers [primary, table], column names, the ``wanted`` columns present) of the light-curve HDU.

    Only the headers are parsed by astropy; the wanted columns are read from the table bytes directly
    (``_columns_from_bytes``), or by astropy when one needs its conversions. RejectedInput if unreadable.
    """
    if not data or len(data) % FITS_BLOCK:
        raise RejectedInput(
            UNREADABLE_FITS, f"{len(data)} bytes is not a whole number of {FITS_BLOCK}-byte FITS blocks (truncated?)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                try:
                    hdu = hdul["LIGHTCURVE"]
                except KeyError:
                    hdu = hdul[1]
                if not isinstance(hdu, fits.BinTableHDU):
                    raise TypeError(f"HDU '{hdu.name}' is not a binary table")
                header = hdu.header
                columns = [str(header.get(f"TTYPE{i}", "")).strip() for i in range(1, int(header["TFIELDS"]) + 1)]
                present = [c for c in wanted if c in columns]
                if int(header.get("NAXIS2", 0)) == 0:  # a table of 0 cadences: empty, not unreadable
                    loaded = {name: np.zeros(0) for name in present}
                else:
                    try:
                        loaded = _columns_from_bytes(header, data, int(hdu.fileinfo()["datLoc"]), present)
                    except LookupError:
                        loaded = {name: np.array(hdu.data[name]) for name in present}
                return [hdul[0].header.copy(), header.copy()], columns, loaded
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


def _target_id(headers: list[fits.Header], path: str, cfg: TceConfig) -> str:
    """The star's id from the headers (``cfg.header_keys``) or the file name; RejectedInput(no_target_id)."""
    if cfg.target_id_source == "header":
        found = (h[k] for k in cfg.header_keys for h in headers if k in h and str(h[k]).strip())
        target_id = normalize_id(next(found, ""))
    else:
        target_id = target_id_from_filename(path, cfg.filename_regex) or ""
    if not target_id:
        raise RejectedInput(
            NO_TARGET_ID, f"no target id (source {cfg.target_id_source}: keys {cfg.header_keys} / {cfg.filename_regex})"
        )
    return target_id


def _header_end(data: bytes, start: int) -> int | None:
    """Byte offset just past the header block holding the END card of the header starting at ``start``."""
    for card in range(start, len(data) - 79, 80):
        if data[card : card + 8] == b"END     ":
            return start + -(-(card + 80 - start) // FITS_BLOCK) * FITS_BLOCK
    return None


def read_target_id(read: Callable[[int], bytes], path: str, cfg: TceConfig) -> str:
    """The star's id of a light-curve file from its first header(s) only, without its table.

    ``read(n)`` returns the next ``n`` bytes of the file (a file handle's ``read``). Reads the primary header
    and, when the key is not there and the primary HDU has no data (Kepler, TESS), the next header. Raises
    RejectedInput (unreadable_fits, no_target_id) as ``read_light_curve`` would for these files.
    """
    if cfg.target_id_source == "filename":
        return _target_id([], path, cfg)
    data = b""
    headers: list[fits.Header] = []
    start = 0
    while len(headers) < 2:
        end = _header_end(data, start)
        while end is None:
            chunk = read(8 * FITS_BLOCK)
            if not chunk:
                if headers:
                    return _target_id(headers, path, cfg)
                raise RejectedInput(UNREADABLE_FITS, "no END card in the primary header (not a FITS file?)")
            data += chunk
            end = _header_end(data, start)
        try:
            headers.append(fits.Header.fromstring(data[start:end].decode("ascii")))
        except (ValueError, UnicodeDecodeError) as error:
            raise RejectedInput(UNREADABLE_FITS, f"not a readable FITS header: {error}") from None
        if (
            any(k in headers[0] and str(headers[0][k]).strip() for k in cfg.header_keys)
            or int(headers[0].get("NAXIS", 0)) != 0
        ):
            break
        start = end
    return _target_id(headers, path, cfg)


def read_light_curve(data: bytes, path: str, cfg: TceConfig) -> LightCurve:
    """FITS bytes -> cleaned ``LightCurve``; raises RejectedInput (unreadable_fits, missing_columns, ...).

    Cleaning: drops cadences whose quality flag is set (any bit, or ``cfg.quality_bitmask``), or whose time,
    flux or flux error is not finite; divides the flux by the median of the kept cadences.
    """
    wanted = [cfg.time_column, cfg.flux_column, cfg.flux_err_column, cfg.quality_column]
    headers, columns, table = _open_table(data, path, [c for c in wanted if c is not None])
    missing = [c for c in wanted if c is not None and c not in columns]
    if missing:
        raise RejectedInput(MISSING_COLUMNS, f"light-curve table lacks {missing} (has {columns})")
    target_id = _target_id(headers, path, cfg)
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
