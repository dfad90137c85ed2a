"""Split stage: raw shards -> ``OUT/split/{train,val,test}/{split}_shard_NNNN-TOTAL.tfrecord`` + data tables.

A target's split is a pure function of sha256(salt + target_id) and the configured fractions (TFX ExampleGen
style), so a target lands in exactly one split whatever the runner, worker count or shard layout. The k-fold
(``OUT/split/fold_NN/`` + ``folds.json``) and temporal modes are in ``split_modes.py`` (docs/splits.md).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.dataset import fs, manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import Counts, Tally
from beam_pipelines.io.readers import ReadWholeFiles, read_shard_with_table, shard_glob
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.sink import WriteShards
from beam_pipelines.io.tables import table_columns
from beam_pipelines.runtime import dry_run
from beam_pipelines.stages import split_modes
from beam_pipelines.stages.build import check_not_empty
from beam_pipelines.stages.runner import StageContext, check_read_all, run_stage
from beam_pipelines.stages.split_modes import TEMPORAL_PLAN
from transforms.config import ConfigError, DatasetConfig
from transforms.contract import BASE_COLUMNS, RAW_DIR, RAW_PREFIX, SPLIT_DIR, SPLITS
from transforms.splitting import assign_split

STAGE = "split"


def ReadShards(pattern: str) -> beam.PTransform:  # noqa: N802 (a PTransform factory, named like one)
    """Shard files matching ``pattern`` -> ShardRecords (example + data-table row), read file by file."""
    return ReadWholeFiles(pattern, read_shard_with_table)


class _AssignSplitFn(beam.DoFn):
    """Keys a ShardRecord by its target's split: ``(split, record)``."""

    def __init__(self, fractions: dict[str, float], salt: str):
        self._fractions = fractions
        self._salt = salt
        self._counters = {split: Metrics.counter(STAGE, f"examples[{split}]") for split in SPLITS}

    def process(self, record: ShardRecord):
        split = assign_split(record.row["target_id"], self._fractions, self._salt)
        self._counters[split].inc()
        yield split, record


def _count_pairs(keyed):
    """(key, n) pairs for the manifest from ``(split, record)`` pairs: examples, examples per label and distinct
    targets of every split."""
    examples = keyed | "ExamplePairs" >> Tally(
        lambda pair: [f"{pair[0]}/examples", f"{pair[0]}/label/{pair[1].row['label']}"]
    )
    targets = (
        keyed
        | "TargetIds" >> beam.Map(lambda pair: (pair[0], pair[1].row["target_id"]))
        | "DistinctTargets" >> beam.Distinct()
        | "TargetPairs" >> Tally(lambda pair: [f"{pair[0]}/targets"])
    )
    return [examples, targets]


class SplitByTarget(beam.PTransform):
    """Raw ShardRecords -> ``{folder}/{split}/`` shards, one WriteShards for every split (parts roll per split, as
    separate writers did); returns (count key, n) pairs."""

    def __init__(self, folder: str, fractions: dict[str, float], salt: str, examples_per_shard: int, columns):
        super().__init__()
        self._folder = folder
        self._fractions = dict(fractions)
        self._salt = salt
        self._per_shard = examples_per_shard
        self._columns = list(columns)

    def expand(self, records):
        keyed = records | "AssignSplit" >> beam.ParDo(_AssignSplitFn(self._fractions, self._salt))
        destinations = {split: (fs.join(self._folder, split), split) for split in SPLITS}
        _ = keyed | "WriteShards" >> WriteShards.per_key(destinations, self._per_shard, self._columns, STAGE)
        pairs = [*_count_pairs(keyed), records | "SeenPairs" >> Tally("seen")]
        return pairs | "FlattenCounts" >> beam.Flatten()


def summarize_counts(counts: Counts) -> dict[str, Any]:
    """Flat ``split/...`` counts -> the manifest entry (per split: examples, targets, labels)."""
    splits = {
        split: {
            "examples": counts[f"{split}/examples"],
            "targets": counts[f"{split}/targets"],
            "labels": counts.under(f"{split}/label/"),
        }
        for split in SPLITS
    }
    written = sum(s["examples"] for s in splits.values())
    return {"seen": counts["seen"], "written": written, "rejected": 0, "splits": splits}


def run_split(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs the split stage on ``out/tfrecords`` and returns the updated manifest; refuses a build that wrote
    no example (StageError code ``empty_build``, as the build stage itself)."""
    if not dry_run.requested(beam_args):  # a dry run reads nothing an earlier stage wrote
        build = manifest.read_manifest(out).get("stages", {}).get("build")
        if build is not None:
            check_not_empty(out, build)
    raw_dir = fs.join(out, RAW_DIR)
    split = config.split
    if split.mode == "temporal":
        check_time_column(split.time_column, table_columns(raw_dir))

    def work(ctx: StageContext) -> dict[str, Any]:
        header = table_columns(raw_dir)
        total = None if ctx.plans else manifest.read_manifest(out).get("stages", {}).get("build", {}).get("written")
        columns = [c for c in header if c != "shard"]
        if split.mode == "kfold":
            by = split_modes.SplitByFold(ctx.tmp_path(SPLIT_DIR), split, columns)
        elif split.mode == "temporal":
            by = split_modes.SplitByTime(ctx.tmp_path(SPLIT_DIR), split, columns, ctx.tmp_path(TEMPORAL_PLAN))
        else:
            by = SplitByTarget(ctx.tmp_path(SPLIT_DIR), split.fractions, split.salt, split.examples_per_shard, columns)
        with ctx.pipeline(total=total) as pipeline:
            _ = (
                pipeline
                | "ReadRaw" >> ReadShards(shard_glob(raw_dir, RAW_PREFIX))
                | "Progress" >> ctx.progress()
                | "SplitByTarget" >> by
                | "WriteSummary" >> ctx.summary()
            )
        if ctx.plans is not None:  # a dry run: built, not run
            return {}
        if split.mode == "kfold":
            return {**split_modes.kfold_entry(ctx.counts(), split, ctx.tmp_path(SPLIT_DIR)), "in_build": total}
        summary = summarize_counts(ctx.counts())
        if split.mode == "temporal":
            entry = split_modes.temporal_entry(ctx.counts(), split, ctx.tmp_path(TEMPORAL_PLAN))
            for name, counts in summary["splits"].items():
                counts["positive_targets"] = ctx.counts()[f"{name}/positive_targets"]
            return {**summary, **entry, "in_build": total}
        return {**summary, "in_build": total, "fractions": dict(split.fractions), "salt": split.salt}

    return run_stage(
        STAGE, out, work, beam_args=beam_args, overwrite=overwrite, requires="build", check=check_split, config=config
    )


def check_time_column(column: str, header: list[str]) -> None:
    """ConfigError unless the raw data tables have the temporal split's time column."""
    if header and column not in header:
        listed = [c for c in header if c not in BASE_COLUMNS]
        raise ConfigError(
            f"config key 'split.time_column': the data tables have no column '{column}'; they have {listed}"
        )


def check_split(summary: dict[str, Any]) -> None:
    """The split stage's own check: it read every example build wrote, and wrote every example it read."""
    check_read_all("split:", summary["seen"], summary.get("in_build"), "the build stage")
    if summary["seen"] != summary["written"]:
        raise StageError(
            f"split: read {summary['seen']} examples but wrote {summary['written']}", code="count_mismatch"
        )
