"""Filter stage: ``OUT/norm/{split}/`` -> ``OUT/filtered/{split}/norm_{split}_shard_NNNN-TOTAL.tfrecord`` + tables.

Declarative conditions (``filter.conditions`` of the dataset config, see ``transforms.filtering``) decide per
example; an example is kept iff it passes all of them. The output has the shape of ``norm/`` (same prefix,
features and data-table columns), so the trainer reads either folder. Flow (one composite, ``FilterNorm``):

    ReadNorm (every split) -> KeyBySplitAndUid ┐
    ReadDataTables (every split)               ┴-> JoinDataTable (CoGroupByKey on (split, uid)) -> Evaluate
        kept    -> WriteShards (per split: one folder each)
        removed -> WriteRejected (OUT/rejected/filter.csv, reason ``condition:<name>``)
        counts  -> WriteSummary (manifest: seen, written, rejected, rejected_by_reason, removed_by_condition)

Each example read is exactly one written example or one rejection, so seen = written + rejected. Everything that
can be checked before the pipeline (conditions vs data-table columns, list files) is, as a ConfigError that
names the condition.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.dataset import fs, manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import SUMMARY_FILE, Counts, Tally, WriteSummary
from beam_pipelines.io.readers import ReadTableRowsByFolder, ReadWholeFiles, read_records_by_folder, shard_glob
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.rejects import REJECTED, WriteRejected, reject
from beam_pipelines.io.sink import WriteShards
from beam_pipelines.io.tables import table_columns, table_glob
from beam_pipelines.runtime import dry_run
from beam_pipelines.stages.runner import StageContext, check_read_all, run_stage, split_mode
from transforms import filtering
from transforms.config import ConfigError, DatasetConfig, FilterCondition
from transforms.contract import BASE_COLUMNS, FILTERED_DIR, NORM_DIR, REJECTED_DIR, SPLITS, example_keys, norm_prefix
from transforms.paths import expand_path

_LOG = logging.getLogger(__name__)
STAGE = "filter"
INPUT_DIR = NORM_DIR
OUTPUT_DIR = FILTERED_DIR
MISSING_TABLE_ROW = "missing_table_row"
FAILED = "failed"
REMOVED = "removed"
ORPHANS = "orphan_rows"


@dataclass(frozen=True)
class FilterPlan:
    """What the pipeline needs, checked on the driver: the splits, their table headers and the id lists."""

    splits: tuple[str, ...]
    headers: dict[str, list[str]]
    id_lists: dict[str, frozenset[str]]


class _EvaluateFn(beam.DoFn):
    """Joins an example with its data-table row (keyed by split and uid), evaluates the conditions, keeps or
    rejects it."""

    def __init__(self, conditions: list[FilterCondition], id_lists: dict[str, frozenset[str]]):
        self._conditions = list(conditions)
        self._id_lists = dict(id_lists)
        self._kept: dict[str, Any] = {}

    def process(self, element):
        (split, uid), grouped = element
        rows = list(grouped["rows"])
        examples = list(grouped["examples"])
        if not examples:
            yield beam.pvalue.TaggedOutput(ORPHANS, uid)
            return
        for serialized in examples:
            _, target_id, label = example_keys(serialized)
            if not rows:
                yield beam.pvalue.TaggedOutput(REMOVED, split)
                yield reject(STAGE, uid, MISSING_TABLE_ROW, f"[{split}] no data-table row for this uid")
                continue
            row = {**rows[0], "uid": uid, "target_id": target_id, "label": label}
            verdict = filtering.evaluate(self._conditions, row, self._id_lists)
            if verdict.kept:
                self._kept_counter(split).inc()
                yield split, ShardRecord(uid, serialized, row)
                continue
            for name in verdict.failed:
                yield beam.pvalue.TaggedOutput(FAILED, name)
            yield beam.pvalue.TaggedOutput(REMOVED, split)
            yield reject(STAGE, uid, verdict.reason, f"[{split}] {verdict.detail}")

    def _kept_counter(self, split: str):
        if split not in self._kept:
            self._kept[split] = Metrics.counter(STAGE, f"kept[{split}]")
        return self._kept[split]


def _key_by_split_and_uid(pair: tuple[str, bytes]) -> tuple[tuple[str, str], bytes]:
    split, serialized = pair
    return (split, example_keys(serialized)[0]), serialized


class ApplyConditions(beam.PTransform):
    """(``(split, serialized example)`` pairs, ``((split, uid), row)`` pairs) of every split -> tagged outputs.

    ``kept``: ``(split, ShardRecord)`` pairs to write; ``REJECTED``: Rejections; ``REMOVED``: the split of every
    rejection; ``FAILED``: the name of every condition a removed example fails (for per-condition totals);
    ``ORPHANS``: uids of data-table rows without an example. A row joins examples of its own split only.
    """

    def __init__(self, conditions: list[FilterCondition], id_lists: dict[str, frozenset[str]]):
        super().__init__()
        self._conditions = list(conditions)
        self._id_lists = dict(id_lists)

    def expand(self, inputs):
        examples, rows = inputs
        return (
            {"examples": examples | "KeyBySplitAndUid" >> beam.Map(_key_by_split_and_uid), "rows": rows}
            | "JoinDataTable" >> beam.CoGroupByKey()
            | "Evaluate"
            >> beam.ParDo(_EvaluateFn(self._conditions, self._id_lists)).with_outputs(
                REJECTED, REMOVED, FAILED, ORPHANS, main="kept"
            )
        )


def _count_pairs(examples, outputs):
    """(key, n) pairs for the summary; ``seen`` comes from the input, independently of the outputs."""
    return [
        examples | "SeenPairs" >> Tally(lambda pair: ["seen", f"{pair[0]}/seen"]),
        outputs.kept
        | "KeptPairs"
        >> Tally(lambda kept: ["written", f"{kept[0]}/examples", f"{kept[0]}/label/{kept[1].row['label']}"]),
        outputs[REJECTED] | "RejectedPairs" >> Tally(lambda r: ["rejected", f"rejected/{r.reason}"]),
        outputs[REMOVED] | "RemovedPairs" >> Tally(lambda split: [f"{split}/removed"]),
        outputs[FAILED] | "FailedPairs" >> Tally(lambda name: [f"condition/{name}"]),
        outputs[ORPHANS] | "OrphanPairs" >> Tally("orphan_table_rows"),
    ]


class FilterNorm(beam.PTransform):
    """Pipeline -> filtered shards, data tables, rejected CSV and a count summary under ``tmp``. Every split goes
    through one set of steps (one read, one join keyed by (split, uid), one writer with a folder per split), as in
    split and normalize."""

    def __init__(
        self,
        norm_dir: str,
        tmp: str,
        plan: FilterPlan,
        conditions: list[FilterCondition],
        per_shard: int,
        progress: beam.PTransform | None = None,
    ):
        super().__init__()
        self._progress = progress
        self._norm_dir = norm_dir
        self._tmp = tmp
        self._plan = plan
        self._conditions = list(conditions)
        self._per_shard = per_shard

    def expand(self, pipeline):
        splits = self._plan.splits
        folders = {split: fs.join(self._norm_dir, split) for split in splits}
        patterns = [shard_glob(folders[split], norm_prefix(split)) for split in splits]
        examples = pipeline | "ReadNorm" >> ReadWholeFiles(patterns, read_records_by_folder)
        if self._progress is not None:
            examples = examples | "Progress" >> self._progress
        rows = pipeline | "ReadTableRows" >> ReadTableRowsByFolder(folders, self._plan.headers)
        outputs = (examples, rows) | "ApplyConditions" >> ApplyConditions(self._conditions, self._plan.id_lists)
        destinations = {split: (fs.join(self._tmp, OUTPUT_DIR, split), norm_prefix(split)) for split in splits}
        columns = {split: [c for c in self._plan.headers[split] if c != "shard"] for split in splits}
        _ = outputs.kept | "WriteShards" >> WriteShards.per_key(destinations, self._per_shard, columns, STAGE)
        outputs[REJECTED] | "WriteRejected" >> WriteRejected(fs.join(self._tmp, REJECTED_DIR, f"{STAGE}.csv"))
        flat = _count_pairs(examples, outputs) | "FlattenCounts" >> beam.Flatten()
        return flat | "WriteSummary" >> WriteSummary(fs.join(self._tmp, SUMMARY_FILE))


def _first_table_rows(folder: str) -> list[dict[str, str]]:
    tables = fs.glob(table_glob(folder))
    return list(csv.DictReader(io.StringIO(fs.read_text(tables[0])))) if tables else []


def check_filter_config(config: DatasetConfig) -> None:
    """ConfigError (code ``filter_kfold_unsupported``) for filter conditions on a k-fold split: the folds'
    normalized iterations (``norm/cv_NN/``) are not filtered; filter the examples before the split (build) or in
    the trainer."""
    if config.split.mode == "kfold" and config.filter is not None and config.filter.conditions:
        raise ConfigError(
            "config key 'filter': the filter stage does not run on a k-fold split (split.mode: kfold); remove "
            "filter.conditions, or filter in the trainer",
            code="filter_kfold_unsupported",
        )


def plan_filter(config: DatasetConfig, out: str) -> FilterPlan:
    """Checks the conditions against ``out/norm`` before any work; raises ConfigError naming the condition.

    Raises StageError when the normalize stage has not run (or its split folders are missing). Target-id list
    files are read here, on the driver (so a local list also works with a remote runner), and their ids travel
    with the pipeline's DoFns: fine for lists of up to ~1e5 ids.
    """
    if config.filter is None:
        raise ConfigError(
            "the config has no 'filter' section; add filter.conditions (see run_configs/filter_example.yaml)"
        )
    check_filter_config(config)
    split_mode(out, config, STAGE)
    conditions = config.filter.conditions
    stages = manifest.read_manifest(out).get("stages", {})
    if "normalize" not in stages:
        raise StageError(
            f"stage 'filter' needs the 'normalize' stage's output in {out}, but the manifest has no 'normalize' "
            "entry; run `sigforge normalize` first",
            code="missing_stage",
        )
    splits = tuple(stages["normalize"].get("splits") or SPLITS)
    headers = {}
    for split in splits:
        folder = fs.join(out, INPUT_DIR, split)
        if not fs.glob(shard_glob(folder, norm_prefix(split))):
            raise StageError(f"no {norm_prefix(split)} shards in {folder}; rerun `sigforge normalize`")
        header = table_columns(folder)
        filtering.validate_conditions(conditions, header, f"{INPUT_DIR}/{split}")
        sample = _first_table_rows(folder)
        for condition in conditions:
            if condition.column is not None:
                values = [row.get(condition.column, "") for row in sample]
                filtering.check_numeric_column(condition, values, f"{INPUT_DIR}/{split}")
        headers[split] = header
    id_lists = {}
    for condition in conditions:
        if condition.target_ids_file is None:
            continue
        path = expand_path(condition.target_ids_file, f"filter condition '{condition.name}': target_ids_file")
        if not fs.exists(path):
            raise ConfigError(f"filter condition '{condition.name}': target_ids_file {path} does not exist")
        id_lists[condition.name] = filtering.parse_id_list(fs.read_text(path))
        if not id_lists[condition.name]:
            _LOG.warning("filter condition '%s': %s lists no target ids", condition.name, path)
    return FilterPlan(splits=splits, headers=headers, id_lists=id_lists)


def planned_filter(config: DatasetConfig) -> FilterPlan:
    """``plan_filter`` of a dry run: nothing under ``OUT`` is read. Every split, the table columns this dry run's
    build planned (the conditions are checked against them when it did; not their values), the id lists read."""
    if config.filter is None:
        raise ConfigError(
            "the config has no 'filter' section; add filter.conditions (see run_configs/filter_example.yaml)"
        )
    plans = dry_run.active()
    header = plans.columns() if plans is not None else list(BASE_COLUMNS)
    if plans is not None and plans.table_columns is not None:
        for split in SPLITS:
            filtering.validate_conditions(config.filter.conditions, header, f"{INPUT_DIR}/{split}")
    id_lists = {}
    for condition in config.filter.conditions:
        if condition.target_ids_file is not None:
            if not fs.exists(condition.target_ids_file):
                raise ConfigError(
                    f"filter condition '{condition.name}': target_ids_file {condition.target_ids_file} does not exist"
                )
            id_lists[condition.name] = filtering.parse_id_list(fs.read_text(condition.target_ids_file))
    return FilterPlan(splits=SPLITS, headers=dict.fromkeys(SPLITS, header), id_lists=id_lists)


def _describe(condition: FilterCondition) -> dict[str, Any]:
    """A condition as the manifest records it: only the keys of its kind of test."""
    described = condition.model_dump(mode="json", exclude_none=True)
    if condition.target_ids_file is None:
        described.pop("keep_listed")
    return described


def summarize_counts(counts: Counts, conditions: list[FilterCondition], splits) -> dict[str, Any]:
    """Flat summary counts -> the manifest entry."""
    per_split = {
        split: {
            "seen": counts[f"{split}/seen"],
            "examples": counts[f"{split}/examples"],
            "removed": counts[f"{split}/removed"],
            "labels": counts.under(f"{split}/label/"),
        }
        for split in splits
    }
    return {
        "seen": counts["seen"],
        "written": counts["written"],
        "rejected": counts["rejected"],
        "rejected_by_reason": counts.under("rejected/"),
        "removed_by_condition": {c.name: counts[f"condition/{c.name}"] for c in conditions},
        "orphan_table_rows": counts["orphan_table_rows"],
        "splits": per_split,
    }


def run_filter(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs the filter stage on ``out/norm`` into ``out/filtered`` and returns the updated manifest."""
    plan = planned_filter(config) if dry_run.requested(beam_args) else plan_filter(config, out)
    conditions = list(config.filter.conditions)

    def work(ctx: StageContext) -> dict[str, Any]:
        _LOG.debug("filter: %s with conditions %s", fs.join(out, INPUT_DIR), [c.name for c in conditions])
        total = None if ctx.plans else manifest.read_manifest(out).get("stages", {}).get("normalize", {}).get("written")
        with ctx.pipeline(total=total) as pipeline:
            _ = pipeline | "FilterNorm" >> FilterNorm(
                fs.join(out, INPUT_DIR),
                ctx.tmp,
                plan,
                conditions,
                config.filter.examples_per_shard,
                progress=ctx.progress(),
            )
        if ctx.plans is not None:  # a dry run: built, not run
            return {}
        summary = summarize_counts(ctx.counts(), conditions, plan.splits)
        normalized = manifest.read_manifest(out).get("stages", {}).get("normalize", {}).get("splits", {})
        for split, counts in summary["splits"].items():
            counts["in_norm"] = normalized.get(split, {}).get("examples")
        if summary["orphan_table_rows"]:
            _LOG.warning("filter: %d data-table rows in norm/ have no example", summary["orphan_table_rows"])
        return {
            **summary,
            "input_dir": INPUT_DIR,
            "output_dir": OUTPUT_DIR,
            "conditions": [_describe(c) for c in conditions],
        }

    return run_stage(
        STAGE,
        out,
        work,
        beam_args=beam_args,
        overwrite=overwrite,
        requires="normalize",
        check=check_filtered,
        config=config,
    )


def check_filtered(summary: dict[str, Any]) -> None:
    """The filter stage's own check: every split read as many examples as normalize wrote for it (a runner that
    lost or repeated elements stops the stage before it publishes)."""
    for split, counts in summary["splits"].items():
        check_read_all(f"filter: split {split}", counts["seen"], counts.get("in_norm"), "the normalize stage")
