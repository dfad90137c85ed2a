"""Normalize stage of a k-fold split: every iteration's ``transform_fn`` applied to all its folds ->
``OUT/norm/cv_NN/{train,val,test}/norm_{split}_shard_*`` + data tables, the layout of ``OUT/norm/{split}/``.

Iteration i's folds play the splits of ``OUT/split/folds.json`` (test: fold i, val: fold i+1 mod k, train: the
rest); each fold's records are transformed with ``OUT/stats/cv_NN/transform_fn`` by the steps of the hash mode's
normalize (``normalize.TransformSplits``: one TransformDataset for the three splits, rows as passthrough
columns) and written beside the data-table rows. Every iteration's folder is a complete normalized dataset, so the
trainer reads ``norm/cv_NN`` as it reads ``norm`` (k times the normalized storage; docs/splits.md has the
figures). With ``ONE_PIPELINE`` one pipeline reads the folds once for all iterations.

``run_normalize_stage`` is the normalize stage for every split mode (``sigforge normalize`` and ``sigforge run``).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from beam_pipelines.dataset import fs, manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import Tally
from beam_pipelines.io.readers import ReadWholeFiles, read_shard_with_table_by_folder, shard_glob
from beam_pipelines.io.sink import WriteShards
from beam_pipelines.io.tables import table_columns
from beam_pipelines.stages import normalize
from beam_pipelines.stages.runner import StageContext, run_stage, split_mode
from transforms.config import DatasetConfig
from transforms.contract import NORM_DIR, SPLIT_DIR, SPLITS, STATS_DIR, fold_name, norm_prefix
from transforms.recipes import Recipe, get_recipe
from transforms.splitting import fold_roles

STAGE = normalize.STAGE
ONE_PIPELINE = True  # one pipeline for all iterations (the folds read once) rather than one per iteration


def run_normalize_stage(
    config: DatasetConfig,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """The normalize stage of ``out`` whatever its split mode: ``run_normalize_folds`` for k folds, else
    ``normalize.run_normalize``."""
    if split_mode(out, config, STAGE) == "kfold":
        return run_normalize_folds(config, out, beam_args, overwrite, recipe=recipe)
    return normalize.run_normalize(config, out, beam_args, overwrite, recipe=recipe)


class _NormalizeIteration(beam.PTransform):
    """``(fold, ShardRecord)`` pairs of every fold + one iteration's ``transform_fn`` -> its normalized shards under
    ``folder/{split}/``; returns count pairs under ``{name}/``: ``{split}/seen``, ``{split}/written`` and the
    quality flags."""

    def __init__(self, iteration: dict[str, Any], transform_fn, folder: str, spec, schema_bytes, per_shard, columns):
        super().__init__()
        self._name = iteration["name"]
        self._roles = {fold_name(fold): split for fold, split in fold_roles(iteration).items()}
        self._transform_fn = transform_fn
        self._folder = folder
        self._spec = spec
        self._schema_bytes = schema_bytes
        self._per_shard = per_shard
        self._columns = columns

    def expand(self, pairs):
        roles, prefix = self._roles, f"{self._name}/"
        records = pairs | "Roles" >> beam.Map(lambda pair: (roles[pair[0]], pair[1]))
        encoded = records | "TransformSplits" >> normalize.TransformSplits(
            self._spec, self._transform_fn, self._schema_bytes
        )
        destinations = {split: (fs.join(self._folder, split), norm_prefix(split)) for split in SPLITS}
        _ = encoded.examples | "WriteShards" >> WriteShards.per_key(destinations, self._per_shard, self._columns, STAGE)
        pairs = [
            records | "SeenPairs" >> Tally(lambda pair: [f"{prefix}{pair[0]}/seen"]),
            encoded[normalize.QUALITY] | "QualityPairs" >> Tally(lambda key: [f"{prefix}{key}"]),
            encoded.examples | "WrittenPairs" >> Tally(lambda pair: [f"{prefix}{pair[0]}/written"]),
        ]
        return pairs | "FlattenCounts" >> beam.Flatten()


def run_normalize_folds(
    config: DatasetConfig,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
    one_pipeline: bool | None = None,
) -> dict[str, Any]:
    """Runs the normalize stage for every iteration of the folds of ``out`` and returns the updated manifest."""
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    raw_spec = recipe.raw_feature_spec(config)
    split_entry = manifest.read_manifest(out).get("stages", {}).get("split", {})
    folds, iterations = split_entry.get("splits", {}), split_entry.get("iterations", [])
    together = ONE_PIPELINE if one_pipeline is None else one_pipeline
    groups = [iterations] if together else [[it] for it in iterations]

    def work(ctx: StageContext) -> dict[str, Any]:
        stats_dirs = {it["name"]: fs.join(out, STATS_DIR, it["name"]) for it in iterations}
        first = next(iter(stats_dirs.values()))
        schema_bytes = tft.TFTransformOutput(first).transformed_metadata.schema.SerializeToString()
        columns = [c for c in table_columns(fs.join(out, SPLIT_DIR, fold_name(0))) if c != "shard"]
        patterns = [shard_glob(fs.join(out, SPLIT_DIR, name), name) for name in folds]
        counts: dict[str, int] = {}
        for group in groups:
            total = sum(entry["examples"] for entry in folds.values())
            with ctx.pipeline(tft=True, total=total, label=f"normalize ({len(group)} iterations)") as pipeline:
                pairs = (
                    pipeline
                    | "ReadFolds" >> ReadWholeFiles(patterns, read_shard_with_table_by_folder)
                    | "Progress" >> ctx.progress()
                )
                results = []
                for it in group:
                    name = it["name"]
                    transform_fn = pipeline | f"{name}/ReadTransformFn" >> tft_beam.ReadTransformFn(stats_dirs[name])
                    normalized = _NormalizeIteration(
                        it,
                        transform_fn,
                        ctx.tmp_path(f"{NORM_DIR}/{name}"),
                        raw_spec,
                        schema_bytes,
                        config.split.examples_per_shard,
                        columns,
                    )
                    results.append(pairs | name >> normalized)
                _ = results | "FlattenCounts" >> beam.Flatten() | "WriteSummary" >> ctx.summary()
            counts.update(ctx.counts())
        entries = {}
        for it in iterations:
            name = it["name"]
            splits = {
                split: {
                    "folds": [fold_name(fold) for fold in it[split]],
                    "in_split": sum(folds[fold_name(fold)]["examples"] for fold in it[split]),
                    "seen": counts.get(f"{name}/{split}/seen", 0),
                    "examples": counts.get(f"{name}/{split}/written", 0),
                    normalize.NON_FINITE: counts.get(f"{name}/{split}/{normalize.NON_FINITE}", 0),
                    normalize.COLLAPSED: counts.get(f"{name}/{split}/{normalize.COLLAPSED}", 0),
                }
                for split in SPLITS
            }
            entries[name] = {
                "seen": sum(v["seen"] for v in splits.values()),
                "written": sum(v["examples"] for v in splits.values()),
                "splits": splits,
            }
        return {
            "mode": "kfold",
            "seen": sum(entry["seen"] for entry in entries.values()),
            "written": sum(entry["written"] for entry in entries.values()),
            "rejected": 0,
            "examples_per_iteration": sum(entry["examples"] for entry in folds.values()),
            "one_pipeline": together,
            "pipelines": len(groups),
            "iterations": entries,
        }

    return run_stage(
        STAGE,
        out,
        work,
        beam_args=beam_args,
        overwrite=overwrite,
        requires="analyze",
        check=check_folds_normalized,
        config=config,
    )


def check_folds_normalized(summary: dict[str, Any]) -> None:
    """Every iteration passes the normalize stage's own check (``normalize.check_normalized``)."""
    for name, entry in summary["iterations"].items():
        try:
            normalize.check_normalized(entry)
        except StageError as error:
            raise StageError(f"{name}: {error}") from None
