"""What every recipe's build PTransform shares: the driver-side plan, and writing shards, rejects and counts.

A recipe's build (TFX ExampleGen style: the base owns writing, each source is a small subclass) implements
``plan`` (cheap driver-side checks that raise ConfigError naming the key, before any work) and ``examples``
(the pipeline from its raw inputs to ShardRecords, rejections and what it saw). ``expand`` then writes
``tmp/tfrecords/raw_shard_*`` + data tables, ``tmp/rejected/build.csv`` and the stage summary, so that
``seen = written + rejected`` is counted the same way for every recipe. A recipe that records provenance
(transforms/provenance.py) names its ``PROVENANCE_COLUMNS`` and returns its ``inputs``: the base writes
``tmp/provenance/inputs.csv``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.io.counting import SUMMARY_FILE, Tally, WriteSummary
from beam_pipelines.io.provenance import WriteInputs
from beam_pipelines.io.rejects import WriteRejected
from beam_pipelines.io.sink import WriteShards
from transforms.contract import RAW_DIR, RAW_PREFIX, REJECTED_DIR
from transforms.provenance import INPUTS_CSV


class BuildOutputs(NamedTuple):
    """A recipe's build pipeline: ``records`` (ShardRecords), ``rejected`` (Rejections), ``seen`` (one element
    per input decision, counted independently of both), ``extra`` ``(key, n)`` count collections and ``inputs``
    (a ``FileDigest`` per raw file looked at, ``beam_pipelines/io/provenance.py``; None: not recorded)."""

    records: Any
    rejected: Any
    seen: Any
    extra: tuple = ()
    inputs: Any = None


class RecipeBuild(beam.PTransform):
    """Base of a recipe's build PTransform: ``pipeline | BuildX(config, input_dir, plan, tmp)``."""

    STAGE = "build"
    # Data-table columns naming each example's raw source (transforms/provenance.py), after the recipe's own.
    PROVENANCE_COLUMNS: tuple[str, ...] = ()

    def __init__(self, config: Any, input_dir: str, plan: Any, tmp: str, progress: beam.PTransform | None = None):
        super().__init__()
        self._config = config
        self._input_dir = input_dir
        self._plan = plan
        self._tmp = tmp
        self._progress = progress  # counts decided inputs (written or rejected) while the pipeline runs

    @classmethod
    def plan(cls, config: Any, input_dir: str) -> Any:
        """Driver-side checks of the inputs against the config; raises ConfigError naming the key."""
        raise NotImplementedError

    @classmethod
    def table_columns(cls, plan: Any) -> list[str]:
        """The data-table columns after ``uid, target_id, label, shard``."""
        raise NotImplementedError

    @classmethod
    def summary_extras(cls, config: Any, counts: Any) -> dict[str, Any]:
        """Recipe-specific entries of the build stage's manifest entry."""
        return {}

    def examples(self, pipeline) -> BuildOutputs:
        raise NotImplementedError

    def expand(self, pipeline):
        built = self.examples(pipeline)
        shards = built.records | "WriteShards[raw]" >> WriteShards(
            fs.join(self._tmp, RAW_DIR),
            RAW_PREFIX,
            self._config.build.examples_per_shard,
            [*self.table_columns(self._plan), *self.PROVENANCE_COLUMNS],
            self.STAGE,
        )
        if built.inputs is not None:
            _ = built.inputs | "WriteInputs" >> WriteInputs(fs.join(self._tmp, INPUTS_CSV))
        if self._progress is not None:
            built.records | "Progress[written]" >> self._progress
            built.rejected | "Progress[rejected]" >> self._progress
        built.rejected | "WriteRejected" >> WriteRejected(fs.join(self._tmp, REJECTED_DIR, f"{self.STAGE}.csv"))
        pairs = (
            built.seen | "SeenPairs" >> Tally("seen"),
            built.records | "WrittenPairs" >> Tally("written"),
            built.rejected | "RejectedPairs" >> Tally(lambda r: ["rejected", f"rejected/{r.reason}"]),
            shards | "ShardPairs" >> Tally("num_shards"),
            *built.extra,
        )
        flat = pairs | "FlattenCounts" >> beam.Flatten()
        _ = flat | "WriteSummary" >> WriteSummary(fs.join(self._tmp, SUMMARY_FILE))
        return shards
