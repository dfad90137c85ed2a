"""Analyze stage: tf.Transform full-pass statistics on the train split only -> ``OUT/stats/``.

Raw train records are read as bytes, optionally capped to K per group (chosen by sha256 of the uid, not an
RNG), decoded by TFXIO into Arrow record batches and fed to ``tft_beam.AnalyzeDataset``. Outputs:
``stats/transform_fn/``, ``stats/transformed_metadata/``, ``stats/train_stats.npz`` and, for strain,
``stats/avg_psd.npz``. The recipe (``config.recipe``) picks the raw feature spec, the ``preprocessing_fn`` and
the statistics read back (``recipe_transform``): strain PSD + whitening, or z-scored light-curve views.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics import Metrics
from tfx_bsl.public import tfxio

from beam_pipelines import fs, manifest
from beam_pipelines.options import make_pipeline_options
from beam_pipelines.shards import shard_glob
from transforms.config import DatasetConfig
from transforms.contract import decode_example, example_keys
from transforms.recipes.g2net import preprocessing
from transforms.recipes.tce import lightcurve
from transforms.recipes.tce import preprocessing as tce_preprocessing

_LOG = logging.getLogger(__name__)
STAGE = "analyze"


def strain_params(config: DatasetConfig) -> preprocessing.StrainParams:
    build = config.build
    return preprocessing.StrainParams(
        fs=build.sample_rate_hz,
        n_channels=build.n_channels,
        n_samples=build.n_samples,
        band=(build.bandpass.low_hz, build.bandpass.high_hz),
        tukey_alpha=config.analyze.tukey_alpha,
        psd_labels=tuple(config.analyze.psd_labels),
    )


@dataclass(frozen=True)
class RecipeTransform:
    """What the analyze and normalize stages need from a recipe: the raw feature spec of its split shards, its
    tf.Transform ``preprocessing_fn`` and the names of the statistics read back from the transform graph."""

    raw_feature_spec: dict[str, Any]
    preprocessing_fn: Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]
    stat_names: tuple[str, ...]


def tce_params(config: DatasetConfig) -> tce_preprocessing.TceParams:
    return tce_preprocessing.TceParams(views=tuple(lightcurve.feature_lengths(config.tce).items()))


def recipe_transform(config: DatasetConfig) -> RecipeTransform:
    """The recipe dispatch: g2net (strain: PSD, whitening, per-channel standardization) or tce (z-scored views)."""
    if config.recipe == "tce":
        params = tce_params(config)
        return RecipeTransform(
            tce_preprocessing.tce_raw_feature_spec(params),
            tce_preprocessing.make_tce_preprocessing_fn(params),
            params.stat_names,
        )
    return RecipeTransform(
        preprocessing.raw_feature_spec(),
        preprocessing.make_preprocessing_fn(strain_params(config)),
        preprocessing.STAT_NAMES,
    )


def raw_tfxio(file_pattern: str, feature_spec: dict[str, Any] | None = None) -> tfxio.TFExampleRecord:
    """TFXIO source over raw/split shards; ``feature_spec`` defaults to the strain recipe's."""
    spec = preprocessing.raw_feature_spec() if feature_spec is None else feature_spec
    schema = tft.DatasetMetadata.from_feature_spec(spec).schema
    return tfxio.TFExampleRecord(file_pattern=file_pattern, schema=schema)


def group_value(serialized: bytes, group_column: str = "target_id") -> tuple[str, str]:
    """(uid, value of the bytes feature ``group_column``) of a serialized example."""
    if group_column == "target_id":
        uid, target_id, _ = example_keys(serialized)
        return uid, target_id
    feature = decode_example(serialized).features.feature
    values = feature[group_column].bytes_list.value if group_column in feature else []
    if not values:
        raise ValueError(f"example lacks the bytes feature '{group_column}' (analyze.cap_group_column)")
    return feature["uid"].bytes_list.value[0].decode("utf-8"), values[0].decode("utf-8")


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
    """Raw train records (serialized tf.Examples) -> tf.Transform ``transform_fn`` written to ``stats_dir``."""

    def __init__(
        self,
        source: tfxio.TFExampleRecord,
        preprocessing_fn,
        stats_dir: str,
        cap: int | None,
        cap_group_column: str = "target_id",
    ):
        super().__init__()
        self._source = source
        self._preprocessing_fn = preprocessing_fn
        self._stats_dir = stats_dir
        self._cap = cap
        self._cap_group_column = cap_group_column

    def expand(self, records):
        if self._cap is not None:
            records = records | "CapPerGroup" >> CapPerGroup(self._cap, self._cap_group_column)
        batches = records | "ToRecordBatches" >> self._source.RawRecordToRecordBatch()
        transform_fn = (
            batches,
            self._source.TensorAdapterConfig(),
        ) | "AnalyzeDataset" >> tft_beam.AnalyzeDataset(self._preprocessing_fn)
        return transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self._stats_dir)


def read_stats(stats_dir: str, stat_names: tuple[str, ...] = preprocessing.STAT_NAMES) -> dict[str, np.ndarray]:
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


def run_analyze(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs the analyze stage on ``out/split/train`` and returns the updated manifest."""
    stages = manifest.read_manifest(out).get("stages", {})
    train_split = stages.get("split", {}).get("splits", {}).get("train", {})
    if config.recipe == "g2net":
        psd_labels = {str(label) for label in config.analyze.psd_labels}
        if not any(train_split.get("labels", {}).get(label, 0) for label in psd_labels):
            raise manifest.StageError(
                f"the train split of {out} has no example with a label in analyze.psd_labels={sorted(psd_labels)} "
                "(needed for the average noise PSD); check the split fractions or the labels"
            )
    elif "split" in stages and not train_split.get("examples", 0):
        raise manifest.StageError(f"the train split of {out} is empty; check the split fractions")
    run = manifest.begin_stage(out, STAGE, overwrite, requires="split")
    recipe = recipe_transform(config)
    pattern = shard_glob(fs.join(out, "split", "train"), "train")
    source = raw_tfxio(pattern, recipe.raw_feature_spec)
    stats_dir = run.tmp_path("stats")
    cap = config.analyze.max_examples_per_group
    group_column = config.analyze.cap_group_column
    _LOG.info("analyze: tf.Transform statistics on %s (cap per %s: %s)", pattern, group_column, cap)
    started = time.monotonic()

    def analyze(preprocessing_fn, out_dir: str) -> None:
        with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
            with tft_beam.Context(temp_dir=run.tmp_path("tft_tmp"), force_tf_compat_v1=True):
                _ = (
                    pipeline
                    | "ReadTrain" >> source.RawRecordBeamSource()
                    | "AnalyzeTrain" >> AnalyzeTrain(source, preprocessing_fn, out_dir, cap, group_column)
                )

    preprocessing_fn = recipe.preprocessing_fn
    if config.recipe == "g2net":
        # Two streaming passes instead of one two-phase analysis: tf.Transform would hold the whole train split
        # between its phases (the whitening needs the finished PSD); re-reading it from disk keeps memory flat.
        params = strain_params(config)
        analyze(preprocessing.make_psd_fn(params), run.tmp_path("psd_pass"))
        noise_psd = read_stats(run.tmp_path("psd_pass"), ("avg_psd", "psd_examples"))
        fs.delete_tree(run.tmp_path("psd_pass"))
        _LOG.info("analyze: pass 1 done (average PSD of %d noise examples)", int(noise_psd["psd_examples"]))
        preprocessing_fn = preprocessing.make_preprocessing_fn(params, noise_psd)
    analyze(preprocessing_fn, stats_dir)
    stats = read_stats(stats_dir, recipe.stat_names)
    if config.recipe == "tce":
        summary = _write_tce_stats(stats_dir, stats, config)
    else:
        summary = _write_strain_stats(stats_dir, stats, config)
    fs.delete_tree(run.tmp_path("tft_tmp"))
    summary = {
        "train_examples": train_split.get("examples", 0),
        "max_examples_per_group": cap,
        **summary,
        "finite": bool(all(np.isfinite(v).all() for v in stats.values())),
        "seconds": round(time.monotonic() - started, 2),
    }
    return manifest.finish_stage(run, summary)


def _write_strain_stats(stats_dir: str, stats: dict[str, np.ndarray], config: DatasetConfig) -> dict[str, Any]:
    """avg_psd.npz + train_stats.npz for strain; the manifest entry's statistics."""
    params = strain_params(config)
    freqs = np.fft.rfftfreq(params.n_samples, 1.0 / params.fs)
    write_npz(fs.join(stats_dir, "avg_psd.npz"), psd=stats["avg_psd"], freqs=freqs, fs=np.float64(params.fs))
    write_npz(fs.join(stats_dir, "train_stats.npz"), freqs=freqs, **stats)
    summary = {
        "psd_examples": int(stats["psd_examples"]),
        "channel_mean": stats["channel_mean"].tolist(),
        "channel_std": stats["channel_std"].tolist(),
    }
    _LOG.info("analyze: PSD from %d noise examples; channel std %s", summary["psd_examples"], summary["channel_std"])
    return summary


def _write_tce_stats(stats_dir: str, stats: dict[str, np.ndarray], config: DatasetConfig) -> dict[str, Any]:
    """train_stats.npz for light curves (per view mean and std, the example count); the manifest statistics."""
    write_npz(fs.join(stats_dir, "train_stats.npz"), **stats)
    views = [name for name, _ in tce_params(config).views]
    summary = {
        "cap_group_column": config.analyze.cap_group_column,
        "stats_examples": int(stats[tce_preprocessing.TCE_STATS_EXAMPLES]),
        "view_mean": {name: float(stats[f"{name}_mean"]) for name in views},
        "view_std": {name: float(stats[f"{name}_std"]) for name in views},
    }
    _LOG.info(
        "analyze: %d train examples in the statistics; view std %s", summary["stats_examples"], summary["view_std"]
    )
    return summary
