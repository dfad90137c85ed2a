"""The split stage's k-fold and temporal modes (docs/splits.md); ``split.py`` runs them, hash mode stays there.

- ``SplitByFold``: raw ShardRecords -> ``OUT/split/fold_NN/fold_NN_shard_*`` + data tables, a target's fold by
  ``transforms.splitting.kfold_assignment`` (with ``stratify``: a side input of every target's label, the max of
  its examples' labels); ``kfold_entry`` then writes ``OUT/split/folds.json`` and the manifest entry.
- ``SplitByTime``: raw ShardRecords -> ``OUT/split/{train,val,test}/`` by ``transforms.splitting
  .temporal_assignment`` over every target's (earliest, latest) value of the data-table column ``time_column``
  (a side input); the plan's cut times and straddling targets are written to a small JSON file for the manifest.
"""

from __future__ import annotations

import json
import math
from typing import Any

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import Counts, Tally
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.sink import WriteShards
from transforms.config import SplitConfig
from transforms.contract import FOLDS_FILE, SPLITS, cv_name, fold_name
from transforms.splitting import CV_RULES, assign_fold, cv_iterations, kfold_assignment, temporal_assignment

STAGE = "split"
TEMPORAL_PLAN = "temporal_plan.json"  # in the stage's temporary folder; read into the manifest, never published
_SAMPLE = 20  # straddling target ids named in the manifest


def _count_pairs(keyed):
    """(key, n) pairs from ``(name, record)`` pairs: examples, examples per label, distinct targets and targets
    with a positive label (their max label > 0) of every split or fold ``name``."""
    examples = keyed | "ExamplePairs" >> Tally(
        lambda pair: [f"{pair[0]}/examples", f"{pair[0]}/label/{pair[1].row['label']}"]
    )
    targets = (
        keyed
        | "TargetLabels" >> beam.Map(lambda pair: ((pair[0], pair[1].row["target_id"]), int(pair[1].row["label"])))
        | "TargetLabel" >> beam.CombinePerKey(max)
        | "TargetPairs"
        >> Tally(lambda kv: [f"{kv[0][0]}/targets"] + ([f"{kv[0][0]}/positive_targets"] if kv[1] > 0 else []))
    )
    return [examples, targets]


# ---- k-fold -----------------------------------------------------------------------------------------------------
class _AssignFoldFn(beam.DoFn):
    """Keys a ShardRecord by its target's fold folder: ``(fold_NN, record)``; ``folds`` (target -> fold, the
    stratified assignment) when given, else ``assign_fold``."""

    def __init__(self, k: int, salt: str):
        self._k = k
        self._salt = salt

    def process(self, record: ShardRecord, folds=None):
        target = record.row["target_id"]
        fold = folds[target] if folds is not None else assign_fold(target, self._k, self._salt)
        yield fold_name(fold), record


class SplitByFold(beam.PTransform):
    """Raw ShardRecords -> ``{folder}/fold_NN/`` shards (one WriteShards for every fold); returns (key, n) pairs."""

    def __init__(self, folder: str, split: SplitConfig, columns):
        super().__init__()
        self._folder = folder
        self._k, self._salt, self._stratify = split.k, split.salt, split.stratify
        self._per_shard = split.examples_per_shard
        self._columns = list(columns)

    def expand(self, records):
        assign = _AssignFoldFn(self._k, self._salt)
        if self._stratify:
            folds = (
                records
                | "StratumLabels" >> beam.Map(lambda r: (r.row["target_id"], int(r.row["label"])))
                | "MaxLabel" >> beam.CombinePerKey(max)
                | "AllTargets" >> beam.combiners.ToDict()
                | "DealFolds" >> beam.Map(kfold_assignment, self._k, self._salt, True)
            )
            keyed = records | "AssignFold" >> beam.ParDo(assign, folds=beam.pvalue.AsSingleton(folds))
        else:
            keyed = records | "AssignFold" >> beam.ParDo(assign)
        names = [fold_name(i) for i in range(self._k)]
        destinations = {name: (fs.join(self._folder, name), name) for name in names}
        _ = keyed | "WriteShards" >> WriteShards.per_key(destinations, self._per_shard, self._columns, STAGE)
        pairs = [*_count_pairs(keyed), records | "SeenPairs" >> Tally("seen")]
        return pairs | "FlattenCounts" >> beam.Flatten()


def _positives(labels: dict[str, int]) -> int:
    return sum(n for label, n in labels.items() if int(label) > 0)


def kfold_entry(counts: Counts, split: SplitConfig, split_dir: str) -> dict[str, Any]:
    """The manifest entry of a k-fold split from its counts; writes ``split_dir/folds.json`` (the layout the
    trainer reads: folds with their sizes, and every iteration's train / val / test folds)."""
    folds = {}
    for index in range(split.k):
        name = fold_name(index)
        labels = counts.under(f"{name}/label/")
        folds[name] = {
            "examples": counts[f"{name}/examples"],
            "targets": counts[f"{name}/targets"],
            "positives": _positives(labels),
            "positive_targets": counts[f"{name}/positive_targets"],
            "labels": labels,
        }
    iterations = [{**it, "name": cv_name(it["iteration"])} for it in cv_iterations(split.k, split.cv_val)]
    plan = {
        "mode": "kfold",
        "k": split.k,
        "salt": split.salt,
        "stratify": split.stratify,
        "target_label": "max" if split.stratify else None,
        "cv_val": split.cv_val,
        "rule": CV_RULES[split.cv_val],
    }
    fs.write_text(
        fs.join(split_dir, FOLDS_FILE),
        json.dumps(
            {
                **plan,
                "folds": [
                    {"fold": i, "name": name, **{k: v for k, v in entry.items() if k != "labels"}}
                    for i, (name, entry) in enumerate(folds.items())
                ],
                "iterations": iterations,
            },
            indent=2,
        )
        + "\n",
    )
    written = sum(entry["examples"] for entry in folds.values())
    return {
        **plan,
        "seen": counts["seen"],
        "written": written,
        "rejected": 0,
        "splits": folds,
        "iterations": iterations,
    }


# ---- temporal ---------------------------------------------------------------------------------------------------
def example_time(record: ShardRecord, column: str) -> float | None:
    """The example's finite value of the data-table column ``column``, or None (empty, not a number, NaN/inf)."""
    try:
        value = float(record.row.get(column, ""))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _merge_ranges(ranges) -> tuple[float, float]:
    ranges = list(ranges)
    return min(low for low, _ in ranges), max(high for _, high in ranges)


def _write_plan(plan, path: str) -> None:
    fs.write_text(
        path,
        json.dumps(
            {
                "starts": plan.starts,
                "targets": len(plan.splits),
                "straddling_targets": len(plan.straddling),
                "straddling_sample": plan.straddling[:_SAMPLE],
            }
        ),
    )


class _AssignTimeFn(beam.DoFn):
    """``(split, record)`` by the temporal plan; an example without a time (``time_missing``, which fails the stage
    after the pipeline) or of a target without any goes to test. Also tags (``STRADDLING``) every example of a
    straddling target dated at or after the start of the split after its own."""

    def __init__(self, column: str):
        self._column = column
        self._plan = None
        self._straddling: frozenset[str] = frozenset()

    def process(self, record: ShardRecord, plan):
        if plan is not self._plan:
            self._plan, self._straddling = plan, frozenset(plan.straddling)
        time = example_time(record, self._column)
        split = plan.splits.get(record.row["target_id"], SPLITS[-1])
        if time is None:
            yield beam.pvalue.TaggedOutput(MISSING, 1)
        elif record.row["target_id"] in self._straddling:
            later = [plan.starts[s] for s in SPLITS[SPLITS.index(split) + 1 :] if plan.starts[s] is not None]
            if later and time >= later[0]:
                yield beam.pvalue.TaggedOutput(STRADDLING, 1)
        yield split, record


MISSING, STRADDLING = "time_missing", "straddling_examples"


class SplitByTime(beam.PTransform):
    """Raw ShardRecords -> ``{folder}/{train,val,test}/`` shards by time (``temporal_assignment``); writes the
    plan's summary to ``plan_path``; returns (key, n) pairs."""

    def __init__(self, folder: str, split: SplitConfig, columns, plan_path: str):
        super().__init__()
        self._folder = folder
        self._column = split.time_column
        self._fractions = dict(split.fractions)
        self._cuts = list(split.cuts) if split.cuts is not None else None
        self._per_shard = split.examples_per_shard
        self._columns = list(columns)
        self._plan_path = plan_path

    def expand(self, records):
        column = self._column
        plan = (
            records
            | "TargetTimes"
            >> beam.FlatMap(lambda r: [] if (t := example_time(r, column)) is None else [(r.row["target_id"], (t, t))])
            | "TimeRange" >> beam.CombinePerKey(_merge_ranges)
            | "AllTargets" >> beam.combiners.ToDict()
            | "Plan" >> beam.Map(temporal_assignment, self._fractions, self._cuts)
        )
        _ = plan | "WritePlan" >> beam.Map(_write_plan, self._plan_path)
        assigned = records | "AssignSplit" >> beam.ParDo(
            _AssignTimeFn(column), plan=beam.pvalue.AsSingleton(plan)
        ).with_outputs(MISSING, STRADDLING, main="keyed")
        keyed = assigned.keyed
        destinations = {split: (fs.join(self._folder, split), split) for split in SPLITS}
        _ = keyed | "WriteShards" >> WriteShards.per_key(destinations, self._per_shard, self._columns, STAGE)
        pairs = [
            *_count_pairs(keyed),
            records | "SeenPairs" >> Tally("seen"),
            assigned[MISSING] | "MissingPairs" >> Tally(MISSING),
            assigned[STRADDLING] | "StraddlingPairs" >> Tally(STRADDLING),
        ]
        return pairs | "FlattenCounts" >> beam.Flatten()


def temporal_entry(counts: Counts, split: SplitConfig, plan_path: str) -> dict[str, Any]:
    """The temporal split's own manifest keys (beside the per-split counts): the rule, the cut times, the
    straddling targets; StageError when an example had no time."""
    if counts[MISSING]:
        raise StageError(
            f"split: {counts[MISSING]} examples have no finite value in the time column '{split.time_column}' "
            "(split.time_column); a temporal split needs a time for every example; nothing was published",
            code="time_missing",
        )
    plan = json.loads(fs.read_text(plan_path))
    return {
        "mode": "temporal",
        "time_column": split.time_column,
        "cuts": list(split.cuts) if split.cuts is not None else None,
        "fractions": dict(split.fractions) if split.cuts is None else None,
        "rule": "a target goes to the split of its earliest example; all its examples stay there",
        "starts": plan["starts"],
        "straddling_targets": plan["straddling_targets"],
        "straddling_examples": counts[STRADDLING],
        "straddling_sample": plan["straddling_sample"],
    }
