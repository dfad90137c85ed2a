"""The data tables beside the shards (docs/ARCHITECTURE.md section 3): ``data_tbl_NNNN-TOTAL.csv`` per
``{prefix}_shard_NNNN-TOTAL.tfrecord``, ``BASE_COLUMNS`` first, one line per example of the shard in uid order.

Their CSV format (a header line, an empty cell for a missing value, lines ending in a newline), how a part's
table becomes its shard's, and the small driver-side reads (a table's rows, a folder's columns).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from beam_pipelines.dataset import fs
from beam_pipelines.runtime import dry_run
from transforms.contract import BASE_COLUMNS, TABLE_PATTERN, table_name_for_shard


def table_for_shard(shard_path: str) -> str:
    """``.../{prefix}_shard_0003-0016.tfrecord`` -> ``.../data_tbl_0003-0016.csv`` (docs/ARCHITECTURE.md section 3)."""
    return fs.join(shard_path.rsplit("/", 1)[0], table_name_for_shard(shard_path))


def read_table(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(fs.read_text(path))))


def table_glob(folder: str) -> str:
    return fs.join(folder, TABLE_PATTERN)


def table_columns(folder: str) -> list[str]:
    """The header of the first data table in ``folder`` ([] when none). In a dry run the folder is not read: the
    columns the dry run's build planned (``dry_run.Plans.columns``)."""
    plans = dry_run.active()
    if plans is not None:
        return plans.columns()
    paths = fs.glob(table_glob(folder))
    if not paths:
        return []
    with fs.open_read(paths[0]) as handle:
        return next(csv.reader([handle.readline().decode("utf-8")]))


def parse_table_line(header: Sequence[str], line: str) -> dict[str, str]:
    """One data-table CSV line (``header`` its table's columns) -> its row without the ``shard`` column."""
    row = dict(zip(header, next(csv.reader([line])), strict=False))
    row.pop("shard", None)
    return row


def with_base_columns(extra: Sequence[str]) -> list[str]:
    """A data table's columns: ``BASE_COLUMNS`` first, then ``extra`` without them."""
    return list(BASE_COLUMNS) + [c for c in extra if c not in BASE_COLUMNS]


def _cells(row: dict[str, Any], columns: Sequence[str], shard: str | None = None) -> list[Any]:
    """A row's values in ``columns`` (a missing or None value empty; ``shard`` given: it fills the shard column)."""
    return [shard if shard is not None and k == "shard" else ("" if (v := row.get(k)) is None else v) for k in columns]


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], shard: str | None = None) -> str:
    """A CSV table: a header of ``columns``, then one line per row of its values in those columns (a missing or
    None value is empty, other keys are left out; ``shard`` given: the ``shard`` column holds it in every row).
    Lines end in ``\n``."""
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(_cells(row, columns, shard) for row in rows)
    return buffer.getvalue()


def format_row(row: dict[str, Any], columns: Sequence[str]) -> str:
    """One data line of ``format_table([row], columns)``, without the header and the line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(_cells(row, columns))
    return buffer.getvalue()


def shard_table(part_csv: str, part: dict[str, Any], columns: Sequence[str], shard: str) -> str:
    """The data table of the shard named ``shard`` from its part's table: the part's shard token replaced by the
    name, when the name is written as it is in CSV and the token occurs once per row (so nowhere else); else the
    part's rows parsed, sorted and written again (``sorted_part_table``)."""
    token = part.get("shard_token")
    if token and format_row({"shard": shard}, ["shard"]) == shard and part_csv.count(token) == part["examples"]:
        return part_csv.replace(token, shard)
    return sorted_part_table(part_csv, columns, shard)


def sorted_part_table(part_csv: str, columns: Sequence[str], shard: str) -> str:
    """The shard's data table from its part's CSV: the part's rows in uid order (stable), in ``columns``, with
    ``shard`` in the shard column; a column the part lacks is empty.

    The same text as ``format_table`` of the rows ``csv.DictReader`` reads (blank lines skipped, a short row's
    missing values empty), sorted by uid, each with ``"shard": shard``; the CSV is parsed once, into lists."""
    header, *rows = csv.reader(io.StringIO(part_csv))
    rows = [row for row in rows if row]
    at_uid = header.index("uid")
    at = [header.index(c) if c in header else None for c in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in sorted(rows, key=lambda row: row[at_uid]):
        writer.writerow(
            [
                shard if c == "shard" else ("" if i is None or i >= len(row) else row[i])
                for c, i in zip(columns, at, strict=True)
            ]
        )
    return buffer.getvalue()
