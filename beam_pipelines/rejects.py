"""Dead-letter handling: every input a stage cannot use becomes one row in ``OUT/rejected/<stage>.csv``."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.shards import format_table
from transforms.contract import REJECTION_COLUMNS, Rejection

REJECTED = "rejected"
COLUMNS = REJECTION_COLUMNS


def reject(stage: str, what: str, reason: str, detail: str) -> beam.pvalue.TaggedOutput:
    """A tagged dead-letter output; also bumps the ``rejected[<reason>]`` counter of ``stage``."""
    Metrics.counter(stage, f"rejected[{reason}]").inc()
    return beam.pvalue.TaggedOutput(REJECTED, Rejection(what, stage, reason, detail))


class WriteRejected(beam.PTransform):
    """Writes rejections to one CSV at ``path`` (header always present, so an empty run still has the file).

    Rows are streamed through ``WriteToText`` (one output shard), never collected into one in-memory list.
    """

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, rejections):
        return (
            rejections
            | "FormatCsv" >> beam.Map(lambda r: format_table([r._asdict()], COLUMNS).split("\n", 1)[1].rstrip("\n"))
            | "WriteCsv"
            >> beam.io.WriteToText(self._path, num_shards=1, shard_name_template="", header=",".join(COLUMNS))
        )
