"""Dead-letter handling: every input a stage cannot use becomes one row in ``OUT/rejected/<stage>.csv``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.io.tables import format_row
from transforms.contract import REJECTION_COLUMNS, Rejection
from transforms.csv_cells import safe_row

REJECTED = "rejected"
COLUMNS = REJECTION_COLUMNS
# An exception no validation step foresaw, raised while processing one element: that element is rejected with
# the exception text instead of failing the pipeline. Tests show that no known bad input ends up here.
INTERNAL_ERROR = "internal_error"
_LOG = logging.getLogger(__name__)


def reject(stage: str, what: str, reason: str, detail: str) -> beam.pvalue.TaggedOutput:
    """A tagged dead-letter output; also bumps the ``rejected[<reason>]`` counter of ``stage``."""
    Metrics.counter(stage, f"rejected[{reason}]").inc()
    return beam.pvalue.TaggedOutput(REJECTED, Rejection(what, stage, reason, detail))


def guarded(stage: str, what: str, outputs: Iterable[Any]) -> Iterator[Any]:
    """Yields ``outputs`` (a DoFn's per-element generator); an unexpected exception becomes one
    ``internal_error`` rejection of ``what`` carrying the exception text, so one element never stops the run.
    Outputs already yielded for that element stay (DoFns here yield their ``seen`` tag first, their result last).
    """
    try:
        yield from outputs
    except Exception as error:  # noqa: BLE001  (the point: any per-element failure becomes a counted rejection)
        _LOG.warning("%s: internal error on %s: %s: %s", stage, what, type(error).__name__, error, exc_info=True)
        yield reject(stage, what, INTERNAL_ERROR, f"{type(error).__name__}: {error}"[:2000])


class WriteRejected(beam.PTransform):
    """Writes rejections to one CSV at ``path`` (header always present, so an empty run still has the file).

    The CSV is meant for people: its cells are spreadsheet-safe (``transforms.csv_cells``; readers strip the
    quote with ``restore_row``). Rows are streamed through ``WriteToText`` (one output shard), never collected
    into one in-memory list.
    """

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, rejections):
        return (
            rejections
            | "FormatCsv" >> beam.Map(lambda r: format_row(safe_row(r._asdict()), COLUMNS))
            | "WriteCsv"
            >> beam.io.WriteToText(self._path, num_shards=1, shard_name_template="", header=",".join(COLUMNS))
        )
