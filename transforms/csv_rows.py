"""CSV inputs decoded row by row (no Beam): the build's per-line parsing and the audit's recount share it.

A row that is not UTF-8 raises ``RejectedInput(UNDECODABLE_ROW)``, a row with the wrong field count
``RejectedInput(MALFORMED_ROW)``; neither fails the file. ``row_key`` is how a build names a rejected row in
``OUT/rejected/build.csv`` (``<what>:<first 80 characters>``), so the audit can find it again from the raw line.
"""

from __future__ import annotations

import csv

from transforms.contract import MALFORMED_ROW, RejectedInput

UNDECODABLE_ROW = "undecodable_csv_row"
KEY_CHARS = 80


def parse_header(raw: bytes) -> tuple[str, ...]:
    """A CSV header line (a UTF-8 byte-order mark allowed) -> column names; raises UnicodeDecodeError."""
    first = raw.decode("utf-8-sig").strip()
    return tuple(next(csv.reader([first]))) if first else ()


def decode_csv_line(line: bytes | str) -> str:
    """One CSV line as text; raises RejectedInput(UNDECODABLE_ROW) when it is not UTF-8."""
    if isinstance(line, str):
        return line
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RejectedInput(UNDECODABLE_ROW, f"not UTF-8 ({error}): {line[:200]!r}") from None


def parse_csv_line(line: str, header: tuple[str, ...]) -> dict[str, str]:
    """One CSV line -> a dict keyed by header; raises RejectedInput(MALFORMED_ROW) on a wrong field count."""
    fields = next(csv.reader([line]), [])
    if len(fields) != len(header):
        raise RejectedInput(
            MALFORMED_ROW,
            f"expected {len(header)} fields {header}, got {len(fields)}: {line[:200]!r}",
        )
    return dict(zip(header, fields, strict=True))


def row_key(what: str, line: bytes | str) -> str:
    """The name of a rejected CSV row: ``<what>:<its first 80 characters>`` (bytes decoded with escapes)."""
    shown = line[:KEY_CHARS].decode("utf-8", "backslashreplace") if isinstance(line, bytes) else line[:KEY_CHARS]
    return f"{what}:{shown}"


def data_lines(data: bytes) -> list[bytes]:
    """The data lines of a CSV file's bytes as the build reads them (``readers.data_lines``, split like Beam's
    text source: header skipped, ``\\n`` or ``\\r\\n`` ends a line, no empty line after a final newline)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines[1:]]
