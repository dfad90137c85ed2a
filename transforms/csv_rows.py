"""CSV inputs decoded row by row (no Beam): the build's parsing and the audit's recount share it.

Files are split into records as RFC 4180 has them (``iter_records``, Python's ``csv`` module deciding where a
record ends): a quoted field may hold newlines, quotes and commas. Each record keeps its raw bytes, so one row
that is not UTF-8 raises ``RejectedInput(UNDECODABLE_ROW)`` and a row with the wrong field count (or broken
quoting) ``RejectedInput(MALFORMED_ROW)``; neither fails the file. A quoted field that spans lines is taken only
when its record has the header's field count; otherwise its first line is one malformed row and reading goes on
at the next line, so an unterminated quote costs one row, never the rest of the file. ``row_key`` is how a build
names a rejected row in ``OUT/rejected/build.csv`` (``<what>:<first 80 characters>``), so the audit can find it
again from the raw record; an ordinary row's key is the same as when files were split into lines.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator

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
    """One CSV record (a line, or several when a quoted field holds newlines) -> a dict keyed by header; raises
    RejectedInput(MALFORMED_ROW) on a wrong field count or broken quoting (an unterminated quote, a character
    after a closing quote, a lone carriage return outside quotes)."""
    try:
        fields = next(csv.reader([line], strict=True), [])
    except csv.Error as error:
        raise RejectedInput(MALFORMED_ROW, f"not a CSV row ({error}): {line[:200]!r}") from None
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


def _physical_lines(data: bytes) -> list[bytes]:
    """``data`` cut after every ``\n`` (each line keeps it; no empty line after a final newline)."""
    lines = data.split(b"\n")
    last = lines.pop()
    return [line + b"\n" for line in lines] + ([last] if last else [])


def _strip_end(line: bytes) -> bytes:
    line = line[:-1] if line.endswith(b"\n") else line
    return line[:-1] if line.endswith(b"\r") else line


def _feed(source: Iterator[bytes], pushed: deque[bytes], consumed: list[bytes], header: bool) -> Iterator[str]:
    """The lines of one record for ``csv.reader``: pushed-back lines first, then ``source``; each line taken is
    appended to ``consumed`` (its bytes) and given decoded (undecodable bytes kept as surrogates, a header's
    byte-order mark dropped)."""
    while True:
        line = pushed.popleft() if pushed else next(source, None)
        if line is None:
            return
        consumed.append(line)
        text = line.decode("utf-8", "surrogateescape")
        yield text.removeprefix("\ufeff") if header and len(consumed) == 1 else text


def iter_records(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The raw records of a CSV file given as its lines (bytes, each with its ``\n``; a binary file handle
    works), header first, each without its final line end. Records are split by Python's ``csv`` module (RFC
    4180, strict quoting) over the lines decoded one by one (undecodable bytes kept, so that the parser reads
    on); a record that spans lines is taken only when the parser ends it cleanly with the header's field count,
    otherwise its first line is a record of its own and the next record starts on the following line."""
    source = iter(lines)
    pushed: deque[bytes] = deque()
    n_fields: int | None = None
    while True:
        line = pushed.popleft() if pushed else next(source, None)
        if line is None:
            return
        if n_fields is not None and b'"' not in line:  # no quote: the line is the record (the parser agrees)
            yield _strip_end(line)
            continue
        pushed.appendleft(line)
        consumed: list[bytes] = []
        try:
            fields = next(csv.reader(_feed(source, pushed, consumed, n_fields is None), strict=True), None)
        except csv.Error:
            fields = None
        if len(consumed) > 1 and (fields is None or (n_fields is not None and len(fields) != n_fields)):
            pushed.extendleft(reversed(consumed[1:]))
            del consumed[1:]
        if n_fields is None:
            n_fields = len(fields) if fields is not None else 0
        yield _strip_end(b"".join(consumed))


def data_lines(data: bytes) -> list[bytes]:
    """The data records of a CSV file's bytes as the build reads them (``iter_records``, header skipped): for a
    file without quoted newlines, its lines after the header (``\n`` or ``\r\n`` ends a line, no empty line
    after a final newline)."""
    return list(iter_records(_physical_lines(data)))[1:]


def first_record(lines: Iterable[bytes]) -> bytes:
    """The header record of a CSV file given as its lines (b"" for an empty file)."""
    return next(iter_records(lines), b"")


def header_record(data: bytes) -> bytes:
    """The header record of a CSV file's bytes (``parse_header`` reads it)."""
    return first_record(_physical_lines(data))
