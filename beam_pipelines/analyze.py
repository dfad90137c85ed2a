"""Analyze stage: tf.Transform full-pass statistics on the train split only -> ``OUT/stats/``.

Raw train records are read as bytes, optionally capped to K per group (chosen by sha256 of the uid, not an
RNG), decoded by TFXIO into Arrow record batches and fed to ``tft_beam.AnalyzeDataset``. Outputs:
``stats/transform_fn/``, ``stats/transformed_metadata/``, ``stats/train_stats.npz`` and ``stats/avg_psd.npz``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
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
from beam_pipelines.records import example_keys
from beam_pipelines.shards import shard_glob
from transforms import preprocessing
from transforms.config import DatasetConfig

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


def raw_tfxio(file_pattern: str) -> tfxio.TFExampleRecord:
    schema = tft.DatasetMetadata.from_feature_spec(preprocessing.raw_feature_spec()).schema
    return tfxio.TFExampleRecord(file_pattern=file_pattern, schema=schema)


def cap_key(serialized: bytes) -> tuple[str, tuple[bytes, bytes]]:
    """(group key, (sha256(uid), record)): the K smallest hashes per group are kept for statistics."""
    uid, target_id, _ = example_keys(serialized)
    return target_id, (hashlib.sha256(uid.encode("utf-8")).digest(), serialized)


class CapPerGroup(beam.PTransform):
    """Keeps at most ``k`` records per group key, chosen by hash (deterministic, combiner-bounded memory)."""

    def __init__(self, k: int):
        super().__init__()
        self._k = k

    def expand(self, records):
        kept = Metrics.counter(STAGE, "stats_examples_kept")
        return (
            records
            | "KeyByGroup" >> beam.Map(cap_key)
            | "SmallestHashes" >> beam.combiners.Top.SmallestPerKey(self._k)
            | "Unpack" >> beam.FlatMap(lambda kv: [kept.inc() or record for _, record in kv[1]])
        )


class AnalyzeTrain(beam.PTransform):
    """Raw train records (serialized tf.Examples) -> tf.Transform ``transform_fn`` written to ``stats_dir``."""

    def __init__(self, source: tfxio.TFExampleRecord, preprocessing_fn, stats_dir: str, cap: int | None):
        super().__init__()
        self._source = source
        self._preprocessing_fn = preprocessing_fn
        self._stats_dir = stats_dir
        self._cap = cap

    def expand(self, records):
        if self._cap is not None:
            records = records | "CapPerGroup" >> CapPerGroup(self._cap)
        batches = records | "ToRecordBatches" >> self._source.RawRecordToRecordBatch()
        transform_fn = (
            batches,
            self._source.TensorAdapterConfig(),
        ) | "AnalyzeDataset" >> tft_beam.AnalyzeDataset(self._preprocessing_fn)
        return transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self._stats_dir)


def read_stats(stats_dir: str) -> dict[str, np.ndarray]:
    """The analyzer results baked into ``transform_fn``, read back as float64 arrays.

    The transform graph is written in TF1 (``force_tf_compat_v1``) form, which keeps the whole graph: the
    ``tf.identity`` nodes that ``strain_preprocessing_fn`` names after its statistics depend only on constants
    after analysis, so they are evaluated with no input.
    """
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.saved_model.loader.load(session, ["transform"], fs.join(stats_dir, "transform_fn"))
        names = {op.name.rsplit("/", 1)[-1]: op.name for op in graph.get_operations() if op.type == "Identity"}
        missing = set(preprocessing.STAT_NAMES) - set(names)
        if missing:
            raise RuntimeError(f"transform_fn in {stats_dir} lacks the statistics {sorted(missing)}")
        values = session.run({key: f"{names[key]}:0" for key in preprocessing.STAT_NAMES})
    return {key: np.asarray(value, dtype=np.float64) for key, value in values.items()}


def write_npz(path: str, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    fs.write_bytes(path, buffer.getvalue())


def run_analyze(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs the analyze stage on ``out/split/train`` and returns the updated manifest."""
    train_split = manifest.read_manifest(out).get("stages", {}).get("split", {}).get("splits", {}).get("train", {})
    psd_labels = {str(label) for label in config.analyze.psd_labels}
    if not any(train_split.get("labels", {}).get(label, 0) for label in psd_labels):
        raise manifest.StageError(
            f"the train split of {out} has no example with a label in analyze.psd_labels={sorted(psd_labels)} "
            "(needed for the average noise PSD); check the split fractions or the labels"
        )
    run = manifest.begin_stage(out, STAGE, overwrite, requires="split")
    params = strain_params(config)
    pattern = shard_glob(fs.join(out, "split", "train"), "train")
    source = raw_tfxio(pattern)
    stats_dir = run.tmp_path("stats")
    cap = config.analyze.max_examples_per_group
    _LOG.info("analyze: tf.Transform statistics on %s (cap per group: %s)", pattern, cap)
    started = time.monotonic()
    with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        with tft_beam.Context(temp_dir=run.tmp_path("tft_tmp"), force_tf_compat_v1=True):
            _ = (
                pipeline
                | "ReadTrain" >> source.RawRecordBeamSource()
                | "AnalyzeTrain" >> AnalyzeTrain(source, preprocessing.make_preprocessing_fn(params), stats_dir, cap)
            )
    stats = read_stats(stats_dir)
    freqs = np.fft.rfftfreq(params.n_samples, 1.0 / params.fs)
    write_npz(fs.join(stats_dir, "avg_psd.npz"), psd=stats["avg_psd"], freqs=freqs, fs=np.float64(params.fs))
    write_npz(fs.join(stats_dir, "train_stats.npz"), freqs=freqs, **stats)
    fs.delete_tree(run.tmp_path("tft_tmp"))
    summary = {
        "train_examples": train_split.get("examples", 0),
        "psd_examples": int(stats["psd_examples"]),
        "max_examples_per_group": cap,
        "channel_mean": stats["channel_mean"].tolist(),
        "channel_std": stats["channel_std"].tolist(),
        "finite": bool(all(np.isfinite(v).all() for v in stats.values())),
        "seconds": round(time.monotonic() - started, 2),
    }
    _LOG.info("analyze: PSD from %d noise examples; channel std %s", summary["psd_examples"], summary["channel_std"])
    return manifest.finish_stage(run, summary)
