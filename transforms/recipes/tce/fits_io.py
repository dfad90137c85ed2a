"""Reading Kepler / TESS FITS light curves (astropy): FITS bytes -> a cleaned ``LightCurve``.

The light-curve table is the ``LIGHTCURVE`` HDU (else HDU 1); columns are named by ``TceConfig``. Output:
``time`` (n,) float64 days in the file's own system (BKJD / BTJD; ``bjd_ref`` = BJDREFI + BJDREFF is its BJD
zero), ``flux`` (n,) float64 relative flux (divided by the median of the kept cadences, so ~1), sorted by time,
flagged and non-finite cadences removed. Unusable files raise ``RejectedInput`` (unreadable_fits,
missing_columns, no_target_id, empty_light_curve). Files written by lightkurve (``LightCurve.to_fits()``) are
recognised by their primary header and read with ``tce.lightkurve``'s fallbacks (lightkurve_files.py).
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
from transforms.recipes.tce import lightkurve_files
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


def id_source(cfg: TceConfig) -> str:
    """Where the star id is looked for, in words (for rejection details)."""
    if cfg.target_id_source == "filename":
        return f"the file name (tce.filename_regex {cfg.filename_regex!r})"
    keys = ", ".join(cfg.header_keys)
    if not cfg.lightkurve.detect:
        return f"header keys {keys}"
    extra = ", ".join(lightkurve_files.id_keys(cfg, True)[len(cfg.header_keys) :])
    return f"header keys {keys}" + (f" (lightkurve files: then {extra})" if extra else "")


def _plain_id(value: Any) -> str:
    return normalize_id(lightkurve_files.header_text(value))


def _target_id(headers: list[fits.Header], path: str, cfg: TceConfig) -> str:
    """The star's id from the headers (``cfg.header_keys``; a lightkurve file's also ``cfg.lightkurve.header_keys``,
    ``TIC 123`` read as ``123``) or the file name; RejectedInput(no_target_id)."""
    target_id = ""
    if cfg.target_id_source == "header":
        lightkurve = bool(headers) and lightkurve_files.is_lightkurve(headers[0], cfg)
        parse = lightkurve_files.parse_star_id if lightkurve else _plain_id
        keys = lightkurve_files.id_keys(cfg, lightkurve)
        found = (parse(h[k]) for k in keys for h in headers if k in h)
        target_id = next((v for v in found if v), "")
        if not target_id:
            seen = {k: lightkurve_files.header_text(h[k]) for h in headers for k in keys if k in h}
            shown = f"; found {seen}" if seen else ""
            kind = "lightkurve file" if lightkurve else "file"
            raise RejectedInput(NO_TARGET_ID, f"no target id in this {kind}'s header keys {keys}{shown}")
    else:
        target_id = target_id_from_filename(path, cfg.filename_regex) or ""
    if not target_id:
        raise RejectedInput(NO_TARGET_ID, f"no target id in the file name (tce.filename_regex {cfg.filename_regex!r})")
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
        keys = lightkurve_files.id_keys(cfg, lightkurve_files.is_lightkurve(headers[0], cfg))
        if (
            any(k in headers[0] and lightkurve_files.header_text(headers[0][k]) for k in keys)
            or int(headers[0].get("NAXIS", 0)) != 0
        ):
            break
        start = end
    return _target_id(headers, path, cfg)


def read_light_curve(data: bytes, path: str, cfg: TceConfig) -> LightCurve:
    """FITS bytes -> cleaned ``LightCurve``; raises RejectedInput (unreadable_fits, missing_columns, ...).

    Cleaning: drops cadences whose quality flag is set (any bit, or ``cfg.quality_bitmask``), or whose time,
    flux or flux error is not finite; divides the flux by the median of the kept cadences. A lightkurve file
    (``lightkurve_files.is_lightkurve``) may lack the flux error and quality columns, and its flux error is not
    used when it is NaN on every cadence (lightkurve writes that when the light curve had no errors).
    """
    headers, columns, table = _open_table(data, path, lightkurve_files.wanted_columns(cfg))
    lightkurve = lightkurve_files.is_lightkurve(headers[0], cfg)
    names, missing = lightkurve_files.resolve_columns(cfg, columns, lightkurve)
    if missing:
        kind = "lightkurve light-curve table" if lightkurve else "light-curve table"
        raise RejectedInput(MISSING_COLUMNS, f"{kind} lacks {missing} (has {columns})")
    target_id = _target_id(headers, path, cfg)
    time = _column(table, names.time, np.float64)
    flux = _column(table, names.flux, np.float64)
    good = np.isfinite(time) & np.isfinite(flux)
    if names.flux_err is not None:
        finite_err = np.isfinite(_column(table, names.flux_err, np.float64))
        if not lightkurve or finite_err.any():
            good &= finite_err
    if names.quality is not None:
        quality = _column(table, names.quality, np.int64)
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
    return LightCurve(
        path=path,
        target_id=target_id,
        time=time[good][order],
        flux=flux[good][order] / median,
        bjd_ref=_bjd_ref(headers, columns, names.time, lightkurve),
        n_cadences=len(time),
        mission=lightkurve_files.header_text(headers[0].get("MISSION") or headers[0].get("TELESCOP")),
        rows=np.flatnonzero(good)[order],
    )


def _bjd_ref(headers: list[fits.Header], columns: list[str], time_column: str, lightkurve: bool) -> float:
    """BJD of time zero: BJDREFI + BJDREFF of the table header; a lightkurve file without them: from the time
    column's unit (btjd, bkjd; else 0: the times are full BJD)."""
    refs = [h[k] for k in ("BJDREFI", "BJDREFF") for h in headers[1:] if k in h]
    if lightkurve and not refs:
        unit = headers[1].get(f"TUNIT{columns.index(time_column) + 1}")
        return lightkurve_files.bjd_ref_from_unit(unit) or 0.0
    return sum(float(v) for v in refs)
