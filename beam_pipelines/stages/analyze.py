"""Analyze stage: tf.Transform full-pass statistics on the train split only -> ``OUT/stats/``.

Raw train records are read as bytes, optionally capped to K per group (chosen by sha256 of the uid, not an
RNG), decoded by TFXIO into Arrow record batches and fed to ``tft_beam.AnalyzeDataset``. The recipe supplies
the raw feature spec, its analysis passes (``Recipe.analysis_passes``: strain has two, the average PSD and then
the whitened moments; light curves one), the statistics read back and the ``stats/*.npz`` files written. The last
pass's ``transform_fn/`` and ``transformed_metadata/`` are what the normalize stage applies.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics import Metrics
from tfx_bsl.public import tfxio

from beam_pipelines.dataset import fs, manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import Counts, Tally
from beam_pipelines.io.readers import ReadWholeFiles, shard_glob
from beam_pipelines.runtime import dry_run
from beam_pipelines.stages import placeholders
from beam_pipelines.stages.outliers import ScaleOutliers, outlier_tally
from beam_pipelines.stages.runner import StageContext, run_stage, split_mode
from transforms.config import ConfigError, DatasetConfig
from transforms.contract import SPLIT_DIR, STATS_DIR, UID, decode_example, example_keys
from transforms.recipes import Recipe, get_recipe
from transforms.recipes.base import example_scale_fn

_LOG = logging.getLogger(__name__)
STAGE = "analyze"
# Fixed Arrow record-batch size: tfx_bsl's default adapts batch sizes to timing, which changes the order in which
# analyzers sum floats and so the last bits of the statistics between two identical runs.
RECORD_BATCH_SIZE = 64
# Every pass also counts, inside tf.Transform, the examples its analyzers saw (tft.size of the uid feature), so the
# stage can check that the statistics come from every example it meant to analyze: a runner that drops or
# repeats elements (seen with the multi-threaded FnApiRunner) stops the stage instead of publishing.
ANALYZED = "sigforge_analyzed_examples"


def counting_fn(preprocessing_fn):
    """``preprocessing_fn`` plus a named analyzer ``ANALYZED``: the number of examples the analyzers saw."""

    def fn(inputs):
        outputs = preprocessing_fn(inputs)
        tf.identity(tft.size(inputs[UID]), name=ANALYZED)
        return outputs

    return fn


def raw_schema(feature_spec: dict[str, Any]):
    """The TFMD schema of raw/split records with the recipe's raw feature spec."""
    return tft.DatasetMetadata.from_feature_spec(feature_spec).schema


def raw_tfxio(file_pattern: str, feature_spec: dict[str, Any]) -> tfxio.TFExampleRecord:
    """TFXIO source over raw/split shards with the recipe's raw feature spec."""
    return tfxio.TFExampleRecord(file_pattern=file_pattern, schema=raw_schema(feature_spec))


def group_value(serialized: bytes, group_column: str = "target_id") -> tuple[str, str]:
    """(uid, value of the bytes feature ``group_column``) of a serialized example (decoded once)."""
    feature = decode_example(serialized).features.feature
    values = feature[group_column].bytes_list.value if group_column in feature else []
    if not values:
        raise ValueError(f"example lacks the bytes feature '{group_column}' (analyze.cap_group_column)")
    return feature[UID].bytes_list.value[0].decode("utf-8"), values[0].decode("utf-8")


def cap_key(serialized: bytes, group_column: str = "target_id") -> tuple[str, tuple[bytes, bytes]]:
    """(group key, (sha256(uid), record)): the K smallest hashes per group are kept for statistics."""
    uid, group = group_value(serialized, group_column)
    return group, (hashlib.sha256(uid.encode("utf-8")).digest(), serialized)


class CapPerGroup(beam.PTransform):
    """Keeps at most ``k`` records per group key (the bytes feature ``group_column``: ``target_id``, or
    ``tce_uid`` for light curves), chosen by hash (deterministic, combiner-bounded memory)."""

    def __init__(self, k: int, group_column: str = "target_id"):
        super().__init__()
        self._k = k
        self._group_column = group_column

    def expand(self, records):
        kept = Metrics.counter(STAGE, "stats_examples_kept")
        group_column = self._group_column
        return (
            records
            | "KeyByGroup" >> beam.Map(cap_key, group_column=group_column)
            | "SmallestHashes" >> beam.combiners.Top.SmallestPerKey(self._k)
            | "Unpack" >> beam.FlatMap(lambda kv: [kept.inc() or record for _, record in kv[1]])
        )


class AnalyzeTrain(beam.PTransform):
    """Raw train records (serialized tf.Examples) -> tf.Transform ``transform_fn`` written to ``stats_dir``;
    returns ``("analyzed", 1)`` pairs, one per record handed to the analyzers (after the cap)."""

    def __init__(
        self,
        source: tfxio.TFExampleRecord,
        preprocessing_fn,
        stats_dir: str,
        cap: int | None,
        cap_group_column: str = "target_id",
        count_key: str = "analyzed",
    ):
        super().__init__()
        self._source = source
        self._preprocessing_fn = preprocessing_fn
        self._stats_dir = stats_dir
        self._cap = cap
        self._cap_group_column = cap_group_column
        self._count_key = count_key

    def expand(self, records):
        if self._cap is not None:
            records = records | "CapPerGroup" >> CapPerGroup(self._cap, self._cap_group_column)
        pairs = records | "AnalyzedPairs" >> Tally(self._count_key)
        batches = records | "ToRecordBatches" >> self._source.RawRecordToRecordBatch(batch_size=RECORD_BATCH_SIZE)
        transform_fn = (
            batches,
            self._source.TensorAdapterConfig(),
        ) | "AnalyzeDataset" >> tft_beam.AnalyzeDataset(counting_fn(self._preprocessing_fn))
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self._stats_dir)
        return pairs


class AnalysisBranch(NamedTuple):
    """One analysis pass over one train set: what ``apply_to`` needs besides the records."""

    source: tfxio.TFExampleRecord
    preprocessing_fn: Any
    pass_dir: str
    cap: int | None
    group_column: str

    def apply_to(self, records, scale_fn=None, excluded=(), prefix: str = "") -> list:
        """Applies the pass to ``records`` (serialized train tf.Examples) in the current pipeline or composite:
        with ``scale_fn``, the outlier guard as its own branch (only (uid, bin) pairs wait for the histogram, never
        the records); the ``excluded`` uids (the guard's outliers) left out of the statistics. Returns the count
        pairs: ``{prefix}read``, ``{prefix}analyzed``, and the guard's ``{prefix}stats_outlier...``."""
        pairs = [records | "ReadPairs" >> Tally(f"{prefix}read")]
        if scale_fn is not None:
            outliers = records | "ScaleOutliers" >> ScaleOutliers(scale_fn)
            pairs.append(outliers | "OutlierPairs" >> outlier_tally(prefix))
        if excluded:
            records = records | "DropOutliers" >> beam.Filter(_not_in, frozenset(excluded))
        analyze = AnalyzeTrain(
            self.source, self.preprocessing_fn, self.pass_dir, self.cap, self.group_column, f"{prefix}analyzed"
        )
        return [*pairs, records | "AnalyzeTrain" >> analyze]


def read_stats(stats_dir: str, stat_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The analyzer results baked into ``transform_fn``, read back as float64 arrays.

    The transform graph is written in TF1 (``force_tf_compat_v1``) form, which keeps the whole graph: the
    ``tf.identity`` nodes that ``strain_preprocessing_fn`` names after its statistics depend only on constants
    after analysis, so they are evaluated with no input.
    """
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.saved_model.loader.load(session, ["transform"], fs.join(stats_dir, "transform_fn"))
        names = {op.name.rsplit("/", 1)[-1]: op.name for op in graph.get_operations() if op.type == "Identity"}
        missing = set(stat_names) - set(names)
        if missing:
            raise RuntimeError(f"transform_fn in {stats_dir} lacks the statistics {sorted(missing)}")
        values = session.run({key: f"{names[key]}:0" for key in stat_names})
    return {key: np.asarray(value, dtype=np.float64) for key, value in values.items()}


def write_npz(path: str, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    fs.write_bytes(path, buffer.getvalue())


def check_analyze_config(config: DatasetConfig, recipe: Recipe | None = None) -> None:
    """Cross-key checks decidable from the config alone; ConfigError naming the key. ``recipe`` is
    ``config.recipe``'s, looked up when not given."""
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    column = config.analyze.cap_group_column
    if column not in recipe.cap_group_columns:
        raise ConfigError(
            f"config key 'analyze.cap_group_column': recipe '{recipe.name}' examples have no bytes feature "
            f"'{column}'; choose one of {list(recipe.cap_group_columns)}"
        )


def run_analyze(
    config: DatasetConfig,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Runs the analyze stage on ``out/split/train`` and returns the updated manifest. ``recipe`` is
    ``config.recipe``'s (``sigforge run`` resolves it once), looked up when not given."""
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    check_analyze_config(config, recipe)
    dry = dry_run.requested(beam_args)  # a dry run reads no manifest: it checks no split entry
    if not dry and split_mode(out, config, STAGE) == "kfold":
        raise StageError(
            f"{out} holds k folds: analyze them with analyze_folds.run_analyze_stage (`sigforge analyze` does)",
            code="split_mode",
        )
    stages = {} if dry else manifest.read_manifest(out).get("stages", {})
    train_split = stages.get("split", {}).get("splits", {}).get("train", {})
    if "split" in stages:
        problem = recipe.check_train_split(config, train_split)
        if problem is not None:
            raise StageError(f"{out}: {problem}")
    pattern = shard_glob(fs.join(out, SPLIT_DIR, "train"), "train")
    raw_spec = recipe.raw_feature_spec(config)
    source = raw_tfxio(pattern, raw_spec)
    cap = config.analyze.max_examples_per_group
    group_column = config.analyze.cap_group_column
    scale_fn = example_scale_fn(recipe, config)

    def work(ctx: StageContext) -> dict[str, Any]:
        _LOG.debug("analyze: tf.Transform statistics on %s (cap per %s: %s)", pattern, group_column, cap)
        stats_dir = ctx.tmp_path(STATS_DIR)
        passes = recipe.analysis_passes(config)
        stats: dict[str, np.ndarray] = {}
        excluded: list[str] = []
        guard_read: int | None = None
        passes_seen: dict[str, dict[str, int]] = {}

        def run_pass(index: int, analysis, pass_dir: str, guard: bool) -> Counts:
            label = f"analyze pass {index + 1}/{len(passes)} ({analysis.name}{', outlier guard' if guard else ''})"
            with ctx.pipeline(tft=True, total=train_split.get("examples"), label=label) as pipeline:
                records = pipeline | "ReadTrain" >> ReadWholeFiles(pattern) | "Progress" >> ctx.progress()
                branch = AnalysisBranch(source, analysis.make_fn(stats), pass_dir, cap, group_column)
                pairs = branch.apply_to(records, scale_fn if guard else None, excluded)
                _ = pairs | "FlattenCounts" >> beam.Flatten() | "WriteSummary" >> ctx.summary()
            return ctx.counts() if ctx.plans is None else Counts({})

        for index, analysis in enumerate(passes):
            last = index == len(passes) - 1
            pass_dir = stats_dir if last else ctx.tmp_path(f"pass_{analysis.name}")
            # The outlier guard rides along the first pass, whose statistics stand when it finds no outlier
            # (the usual case: one pipeline and one read of the train split fewer); when it finds some, that
            # pass runs again without them.
            guard = index == 0 and scale_fn is not None
            counts = run_pass(index, analysis, pass_dir, guard)
            if ctx.plans is not None:  # a dry run: the next pass is built with placeholder statistics
                stats = placeholders.stats(analysis.make_fn(stats), raw_spec, analysis.stat_names)
                continue
            if guard:
                guard_read = counts["read"]
                excluded = sorted(counts.under("stats_outlier/"))
                if excluded:
                    fs.delete_tree(pass_dir)
                    counts = run_pass(index, analysis, pass_dir, guard=False)
            stats = read_stats(pass_dir, (*analysis.stat_names, ANALYZED))
            passes_seen[analysis.name] = {
                "read": counts["read"],
                "handed": counts["analyzed"],
                "analyzed": int(stats.pop(ANALYZED)),
            }
            if not last:
                fs.delete_tree(pass_dir)
            _LOG.debug("analyze: pass %d/%d (%s) done", index + 1, len(passes), analysis.name)
        if ctx.plans is not None:
            if len(passes) > 1:
                ctx.plans.note("analyze: passes after the first are built with placeholder statistics (ones)")
            return {}
        for name, arrays in recipe.stats_files(config, stats).items():
            write_npz(fs.join(stats_dir, name), **arrays)
        if excluded:
            shown = excluded[:20]
            _LOG.warning("analyze: %d train examples left out of the statistics as outliers: %s", len(excluded), shown)
        return {
            "train_examples": train_split.get("examples", 0),
            "stats_outliers_excluded": len(excluded),
            "stats_outlier_uids": excluded[:100],
            "max_examples_per_group": cap,
            "analyzed_examples": passes_seen,
            "guard_read": guard_read,
            **recipe.stats_summary(config, stats),
            "finite": bool(all(np.isfinite(v).all() for v in stats.values())),
        }

    return run_stage(
        STAGE, out, work, beam_args=beam_args, overwrite=overwrite, requires="split", check=check_stats, config=config
    )


def _not_in(serialized: bytes, uids: frozenset[str]) -> bool:
    return example_keys(serialized)[0] not in uids


def check_stats(summary: dict[str, Any]) -> None:
    """The analyze stage's own output check: statistics finite, and every standard deviation it reports
    (a summary key ending in ``std``) strictly positive; StageError before anything is published."""
    if not summary.get("finite", False):
        raise StageError(
            "analyze: the train statistics are not finite (NaN/inf); nothing was published", code="non_finite"
        )
    check_analyzed_counts(summary)
    for key, value in summary.items():
        numbers = list(value.values()) if isinstance(value, dict) else value
        if key.endswith("std") and not (np.asarray(numbers, dtype=np.float64) > 0).all():
            raise StageError(
                f"analyze: statistic '{key}' = {value} is not positive (degenerate train data); nothing was published",
                code="degenerate",
            )


def check_analyzed_counts(summary: dict[str, Any]) -> None:
    """The outlier guard and every pass read the whole train split (``read`` = the split's ``train_examples``);
    every pass handed the examples the guard and the cap kept to tf.Transform (without a cap: ``train_examples``
    minus the outliers), and its analyzers saw exactly those (``analyzed`` = ``handed``, counted inside the
    graph). A mismatch means the runner lost or repeated elements: StageError before anything is published."""
    train = summary.get("train_examples")
    if train is None:  # no split count to compare with
        return
    expected = train - summary.get("stats_outliers_excluded", 0)
    capped = summary.get("max_examples_per_group") is not None
    if summary.get("guard_read") is not None and summary["guard_read"] != train:
        raise StageError(
            f"analyze: the outlier guard read {summary['guard_read']} train examples, the split holds {train} "
            "(the runner lost or repeated elements); nothing was published",
            code="count_mismatch",
        )
    for name, seen in summary.get("analyzed_examples", {}).items():
        problem = None
        if seen["read"] != train:
            problem = f"read {seen['read']} train examples, the split holds {train}"
        elif seen["analyzed"] != seen["handed"]:
            problem = f"handed {seen['handed']} examples to tf.Transform, whose analyzers saw {seen['analyzed']}"
        elif (seen["handed"] > expected) if capped else (seen["handed"] != expected):
            problem = f"analyzed {seen['handed']} examples, expected {'at most ' if capped else ''}{expected}"
        if problem:
            raise StageError(
                f"analyze: pass '{name}' {problem} (the runner lost or repeated elements); nothing was published",
                code="count_mismatch",
            )
