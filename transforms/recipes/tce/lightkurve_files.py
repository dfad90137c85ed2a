"""Light curves written by lightkurve (``LightCurve.to_fits()``): how they are recognised and read.

lightkurve writes a Kepler / TESS-like file (a primary HDU and a ``LIGHTCURVE`` table) whose primary header has
``CREATOR = 'lightkurve.LightCurve.to_fits()'`` and ``ORIGIN = 'Unofficial data product'``. It differs from the
SPOC files the TCE configs name:

* the star id: ``KEPLERID`` (``KeplerLightCurve``), ``TARGETID`` (``TessLightCurve``), and in every case
  ``OBJECT`` (the target id as text, ``"None"`` when lightkurve had none, or whatever the user passed, e.g.
  ``to_fits(OBJECT="TIC 100100827")``); never ``TICID``;
* the flux: ``FLUX`` / ``FLUX_ERR`` (``flux_column_name`` may rename them), not ``PDCSAP_FLUX``; a light curve
  made without errors has ``FLUX_ERR`` NaN on every cadence;
* the quality flags: ``QUALITY`` (TESS), ``SAP_QUALITY`` (Kepler), or none (a plain ``LightCurve``);
* the time: ``TIME`` in the light curve's own format (``btjd``, ``bkjd``: the unit of the column), no
  BJDREFI / BJDREFF.

``TceConfig.lightkurve`` says what to use instead for such files (config.py); the SPOC path is unchanged. Pure
functions of the headers and column names: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.tce_table import normalize_id

CREATOR_MARK = "lightkurve"  # in CREATOR, case-insensitive
ORIGIN = "Unofficial data product"  # lightkurve's ORIGIN
# BJD of time zero of lightkurve's time formats (the TIME column's unit).
TIME_FORMAT_BJD_REF = {"btjd": 2457000.0, "bkjd": 2454833.0}
# A star id: a number, alone or after a catalogue prefix ("TIC 100100827", "KIC 11442793", "kplr011442793").
_STAR_ID = re.compile(r"(?:(?:TIC|KIC|KPLR|EPIC)[\s_-]*)?(\d+)(?:\.0*)?", re.IGNORECASE)


def header_text(value: Any) -> str:
    """A header value as stripped text; a blank card (None) is ``""``."""
    return "" if value is None else str(value).strip()


def is_lightkurve(primary: Mapping[str, Any], cfg: TceConfig) -> bool:
    """True when the primary header says lightkurve wrote the file (and ``tce.lightkurve.detect`` is on)."""
    if not cfg.lightkurve.detect:
        return False
    creator = header_text(primary.get("CREATOR")).lower()
    return CREATOR_MARK in creator or header_text(primary.get("ORIGIN")) == ORIGIN


def id_keys(cfg: TceConfig, lightkurve: bool) -> list[str]:
    """The header keys tried for the star id, in order: ``tce.header_keys``, then for a lightkurve file
    ``tce.lightkurve.header_keys`` not already listed."""
    if not lightkurve:
        return list(cfg.header_keys)
    return list(cfg.header_keys) + [k for k in cfg.lightkurve.header_keys if k not in cfg.header_keys]


def parse_star_id(value: Any) -> str:
    """The star id in a lightkurve header value: an integer, or a number after a catalogue prefix
    (``TIC 100100827`` -> ``100100827``); ``""`` for anything else (a name, ``"None"``, a blank card)."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value) if value >= 0 else ""
    match = _STAR_ID.fullmatch(header_text(value))
    return normalize_id(match.group(1)) if match else ""


@dataclass(frozen=True)
class Columns:
    """The light-curve table's columns to read; None: not read (no flux error / no quality flags)."""

    time: str
    flux: str
    flux_err: str | None
    quality: str | None
    lightkurve: bool = False

    def names(self) -> list[str]:
        return [c for c in (self.time, self.flux, self.flux_err, self.quality) if c is not None]


def wanted_columns(cfg: TceConfig) -> list[str]:
    """Every column ``resolve_columns`` may pick (those a file lacks are simply not read)."""
    names = [cfg.time_column, cfg.flux_column, cfg.flux_err_column, cfg.quality_column]
    if cfg.lightkurve.detect:
        lk = cfg.lightkurve
        names += [lk.flux_column, lk.flux_err_column, *lk.quality_columns]
    return list(dict.fromkeys(c for c in names if c is not None))


def resolve_columns(cfg: TceConfig, present: Sequence[str], lightkurve: bool) -> tuple[Columns, list[str]]:
    """(the columns to read, the configured ones missing). A SPOC file needs every configured column; a lightkurve
    file falls back to ``tce.lightkurve``'s flux / flux error / quality names and needs only time and flux."""
    configured = Columns(cfg.time_column, cfg.flux_column, cfg.flux_err_column, cfg.quality_column)
    if not lightkurve:
        return configured, [c for c in configured.names() if c not in present]
    lk = cfg.lightkurve

    def first(*names: str | None) -> str | None:
        return next((n for n in names if n is not None and n in present), None)

    flux = first(cfg.flux_column, lk.flux_column)
    columns = Columns(
        time=cfg.time_column,
        flux=flux or cfg.flux_column,
        flux_err=first(cfg.flux_err_column, lk.flux_err_column),
        quality=first(cfg.quality_column, *lk.quality_columns),
        lightkurve=True,
    )
    missing = [c for c in (cfg.time_column,) if c not in present]
    if flux is None:
        missing.append(f"{cfg.flux_column} (or {lk.flux_column})")
    return columns, missing


def bjd_ref_from_unit(unit: Any) -> float | None:
    """The BJD of time zero named by lightkurve's time format (a TIME column's TUNIT), or None."""
    return TIME_FORMAT_BJD_REF.get(header_text(unit).lower())
