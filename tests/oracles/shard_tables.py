"""The shard data tables as they were written before ``beam_pipelines.io.tables`` formatted them by hand: through
``csv.DictWriter`` / ``csv.DictReader``. The oracle ``tests/unit/beam_pipelines/io/test_shard_batches.py`` pins
``format_table``, ``format_row``, ``sorted_part_table`` and ``WriteShards``'s tables against, byte for byte."""

from __future__ import annotations

import csv
import io


def format_table(rows, columns) -> str:
    """format_table as it was (csv.DictWriter)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def sorted_table(part_csv: str, columns, shard: str) -> str:
    """The finalize step's table as it was: DictReader, sort by uid, DictWriter with the shard column."""
    rows = list(csv.DictReader(io.StringIO(part_csv)))
    rows.sort(key=lambda row: row["uid"])
    return format_table([{**row, "shard": shard} for row in rows], columns)
