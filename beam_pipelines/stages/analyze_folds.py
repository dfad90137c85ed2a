"""Analyze stage of a k-fold split: every iteration's statistics from its train folds only -> ``OUT/stats/cv_NN/``.

Each ``OUT/stats/cv_NN/`` is what ``OUT/stats/`` is for a hash split (``transform_fn/``, ``transformed_metadata/``,
the recipe's ``*.npz``), made by the same passes, outlier guard and cap (``analyze.AnalysisBranch``) over the
examples of the iteration's train folds (``OUT/split/folds.json``). With ``ONE_PIPELINE`` one pipeline per pass
reads every fold once and feeds each iteration's analysis the records of its train folds (a Filter on the fold
each record was read from); otherwise each iteration runs its own pipelines, reading only its train folds
(docs/splits.md has the timings behind the choice). The manifest records, per iteration, the examples it read from
each fold, so the audit checks that no test or val fold reached the statistics.

``run_analyze_stage`` is the analyze stage for every split mode (``sigforge analyze`` and ``sigforge run``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np

from beam_pipelines.dataset import fs, manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import Counts, Tally
from beam_pipelines.io.readers import ReadWholeFiles, read_records_by_folder, shard_glob
from beam_pipelines.stages import analyze
from beam_pipelines.stages.runner import StageContext, run_stage, split_mode
from transforms.config import DatasetConfig
from transforms.contract import SPLIT_DIR, STATS_DIR, cv_name, fold_name
from transforms.recipes import Recipe, get_recipe
from transforms.recipes.base import example_scale_fn

_LOG = logging.getLogger(__name__)
STAGE = analyze.STAGE
# One pipeline per pass for all iterations (each fold read once per pass) rather than one per iteration and pass.
ONE_PIPELINE = True


def run_analyze_stage(
    config: DatasetConfig,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """The analyze stage of ``out`` whatever its split mode: ``run_analyze_folds`` for k folds, else
    ``analyze.run_analyze``."""
    if split_mode(out, config, STAGE) == "kfold":
        return run_analyze_folds(config, out, beam_args, overwrite, recipe=recipe)
    return analyze.run_analyze(config, out, beam_args, overwrite, recipe=recipe)


@dataclass(frozen=True)
class Iteration:
    """One cross-validation iteration as the analysis sees it: its name (``cv_NN``), train fold folders and the
    examples and labels they hold (the split's counts)."""

    name: str
    train: tuple[str, ...]
    examples: int
    labels: dict[str, int]
    targets: int

    def split_entry(self) -> dict[str, Any]:
        """The manifest entry of a split made of the train folds, for ``Recipe.check_train_split``."""
        return {"examples": self.examples, "labels": self.labels, "targets": self.targets}


def plan_iterations(split_entry: dict[str, Any]) -> list[Iteration]:
    """Every iteration of the split's manifest entry, with its train folds' counts."""
    folds = split_entry["splits"]
    plans = []
    for it in split_entry["iterations"]:
        train = tuple(fold_name(j) for j in it["train"])
        labels: dict[str, int] = {}
        for name in train:
            for label, n in folds[name].get("labels", {}).items():
                labels[label] = labels.get(label, 0) + n
        examples = sum(folds[name]["examples"] for name in train)
        targets = sum(folds[name]["targets"] for name in train)
        plans.append(Iteration(cv_name(it["iteration"]), train, examples, dict(sorted(labels.items())), targets))
    return plans


class _IterationAnalysis(beam.PTransform):
    """``(fold, record)`` pairs of every fold -> one iteration's analysis pass over its train folds' records;
    returns count pairs under ``{iteration}/`` (``read``, ``analyzed``, the guard's, ``from/{fold}``)."""

    def __init__(self, iteration: Iteration, branch: analyze.AnalysisBranch, scale_fn, excluded):
        super().__init__()
        self._iteration = iteration
        self._branch = branch
        self._scale_fn = scale_fn
        self._excluded = excluded

    def expand(self, pairs):
        prefix = f"{self._iteration.name}/"
        train = frozenset(self._iteration.train)
        mine = pairs | "TrainFolds" >> beam.Filter(lambda pair: pair[0] in train)
        read = mine | "FoldPairs" >> Tally(lambda pair: [f"{prefix}from/{pair[0]}"])
        records = mine | "Records" >> beam.Values()
        counts = self._branch.apply_to(records, self._scale_fn, self._excluded, prefix)
        return [read, *counts] | "FlattenCounts" >> beam.Flatten()


def run_analyze_folds(
    config: DatasetConfig,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
    one_pipeline: bool | None = None,
) -> dict[str, Any]:
    """Runs the analyze stage on the folds of ``out/split`` (every iteration) and returns the updated manifest;
    ``one_pipeline`` (default ``ONE_PIPELINE``) chooses one pipeline per pass for all iterations."""
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    analyze.check_analyze_config(config, recipe)
    split_entry = manifest.read_manifest(out).get("stages", {}).get("split", {})
    plans = plan_iterations(split_entry)
    for plan in plans:
        problem = recipe.check_train_split(config, plan.split_entry())
        if problem is not None:
            raise StageError(f"{out}: iteration {plan.name} (train folds {list(plan.train)}): {problem}")
    spec = recipe.raw_feature_spec(config)
    source = analyze.raw_tfxio(shard_glob(fs.join(out, SPLIT_DIR, plans[0].train[0]), plans[0].train[0]), spec)
    cap = config.analyze.max_examples_per_group
    group_column = config.analyze.cap_group_column
    scale_fn = example_scale_fn(recipe, config)
    together = ONE_PIPELINE if one_pipeline is None else one_pipeline
    groups = [plans] if together else [[plan] for plan in plans]

    def work(ctx: StageContext) -> dict[str, Any]:
        passes = recipe.analysis_passes(config)
        stats: dict[str, dict[str, np.ndarray]] = {plan.name: {} for plan in plans}
        excluded: dict[str, list[str]] = {plan.name: [] for plan in plans}
        guard_read: dict[str, int | None] = dict.fromkeys(stats)
        from_folds: dict[str, dict[str, int]] = {}
        seen: dict[str, dict[str, dict[str, int]]] = {plan.name: {} for plan in plans}
        pipelines = 0

        def run_pass(index: int, analysis, group: list[Iteration], dirs: dict[str, str], guard: bool) -> Counts:
            nonlocal pipelines
            pipelines += 1
            folds = sorted({name for plan in group for name in plan.train})
            patterns = [shard_glob(fs.join(out, SPLIT_DIR, name), name) for name in folds]
            total = sum(split_entry["splits"][name]["examples"] for name in folds)
            label = f"analyze pass {index + 1}/{len(passes)} ({analysis.name}, {len(group)} iterations)"
            with ctx.pipeline(tft=True, total=total, label=label) as pipeline:
                pairs = (
                    pipeline
                    | "ReadFolds" >> ReadWholeFiles(patterns, read_records_by_folder)
                    | "Progress" >> ctx.progress()
                )
                counts = []
                for plan in group:
                    fn = analysis.make_fn(stats[plan.name])
                    branch = analyze.AnalysisBranch(source, fn, dirs[plan.name], cap, group_column)
                    counts.append(
                        pairs
                        | plan.name
                        >> _IterationAnalysis(plan, branch, scale_fn if guard else None, excluded[plan.name])
                    )
                _ = counts | "FlattenCounts" >> beam.Flatten() | "WriteSummary" >> ctx.summary()
            return ctx.counts()

        for index, analysis in enumerate(passes):
            last = index == len(passes) - 1
            dirs = {
                plan.name: ctx.tmp_path(f"{STATS_DIR}/{plan.name}" if last else f"pass_{analysis.name}/{plan.name}")
                for plan in plans
            }
            guard = index == 0 and scale_fn is not None  # as in analyze.run_analyze
            for group in groups:
                counts = dict.fromkeys((plan.name for plan in group), run_pass(index, analysis, group, dirs, guard))
                if guard:
                    for plan in group:
                        guard_read[plan.name] = counts[plan.name][f"{plan.name}/read"]
                        excluded[plan.name] = sorted(counts[plan.name].under(f"{plan.name}/stats_outlier/"))
                    again = [plan for plan in group if excluded[plan.name]]
                    if again:
                        for plan in again:
                            fs.delete_tree(dirs[plan.name])
                        rerun = run_pass(index, analysis, again, dirs, guard=False)
                        counts.update(dict.fromkeys((plan.name for plan in again), rerun))
                for plan in group:
                    mine, prefix = counts[plan.name], f"{plan.name}/"
                    values = analyze.read_stats(dirs[plan.name], (*analysis.stat_names, analyze.ANALYZED))
                    seen[plan.name][analysis.name] = {
                        "read": mine[f"{prefix}read"],
                        "handed": mine[f"{prefix}analyzed"],
                        "analyzed": int(values.pop(analyze.ANALYZED)),
                    }
                    from_folds.setdefault(plan.name, mine.under(f"{prefix}from/"))
                    stats[plan.name] = values
                    if not last:
                        fs.delete_tree(dirs[plan.name])
            _LOG.debug(
                "analyze: pass %d/%d (%s) done for %d iterations", index + 1, len(passes), analysis.name, len(plans)
            )
        iterations = {}
        for plan in plans:
            for name, arrays in recipe.stats_files(config, stats[plan.name]).items():
                analyze.write_npz(fs.join(ctx.tmp_path(STATS_DIR), plan.name, name), **arrays)
            if excluded[plan.name]:
                _LOG.warning("analyze: %s: %d train examples left out as outliers", plan.name, len(excluded[plan.name]))
            iterations[plan.name] = {
                "train_folds": list(plan.train),
                "train_examples": plan.examples,
                "read_by_fold": from_folds[plan.name],
                "stats_outliers_excluded": len(excluded[plan.name]),
                "stats_outlier_uids": excluded[plan.name][:100],
                "max_examples_per_group": cap,
                "analyzed_examples": seen[plan.name],
                "guard_read": guard_read[plan.name],
                **recipe.stats_summary(config, stats[plan.name]),
                "finite": bool(all(np.isfinite(v).all() for v in stats[plan.name].values())),
            }
        return {
            "mode": "kfold",
            "k": len(plans),
            "one_pipeline": together,
            "pipelines": pipelines,
            "max_examples_per_group": cap,
            "finite": all(entry["finite"] for entry in iterations.values()),
            "iterations": iterations,
        }

    return run_stage(
        STAGE, out, work, beam_args=beam_args, overwrite=overwrite, requires="split", check=check_folds, config=config
    )


def check_folds(summary: dict[str, Any]) -> None:
    """Every iteration passes the analyze stage's own check (``analyze.check_stats``), and read exactly its train
    folds: StageError naming the iteration before anything is published."""
    for name, entry in summary["iterations"].items():
        try:
            analyze.check_stats(entry)
        except StageError as error:
            raise StageError(f"{name}: {error}") from None
        if not set(entry["read_by_fold"]) <= set(entry["train_folds"]):
            raise StageError(
                f"analyze: {name} read {entry['read_by_fold']}, its train folds are {entry['train_folds']}"
            )
