"""Spreadsheet-safe cells for the CSVs meant for people (docs/rejections.md, "CSVs meant for people").

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, OWASP's
list) as a formula, so an input named ``=HYPERLINK(...)`` would act when a person opens ``rejected/build.csv``.
``safe_cell`` writes such a cell with a single quote in front (a spreadsheet shows the text without the quote),
unless it is a plain number (``-1.5`` stays a number). A cell that starts with a quote gets one more, so the rule
can be undone exactly: ``restore_cell`` strips one leading quote, and the code that reads these CSVs back (the
audit, ``evaluate --baseline``) gets every value as it was. Data tables (``data_tbl_*.csv``) are read by code and
keep their exact values: never pass them through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell for people: a string a spreadsheet would run (or one that starts with a quote)
    gets a leading quote; plain numbers and non-strings are returned as they are."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(QUOTE) or (value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value)):
        return QUOTE + value
    return value


def restore_cell(text: str) -> str:
    """The value ``safe_cell`` wrote as ``text`` (one leading quote removed)."""
    return text[1:] if text.startswith(QUOTE) else text


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: safe_cell(value) for key, value in row.items()}


def restore_row(row: Mapping[str, str | None]) -> dict[str, str | None]:
    """A row read back (``csv.DictReader``) from a CSV written with ``safe_cell``."""
    return {key: restore_cell(value) if isinstance(value, str) else value for key, value in row.items()}
