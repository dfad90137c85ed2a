"""Normalize stage: apply the train ``transform_fn`` to every split -> ``OUT/norm/{split}/norm_{split}_shard_*``.

Raw split records are decoded by TFXIO into Arrow record batches, transformed by ``tft_beam.TransformDataset``
with ``output_record_batches=True``, and encoded back to tf.Examples in C++ (tfx_bsl's
``RecordBatchToExamplesEncoder``): no Python instance dicts, no per-float Python work.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics import Metrics
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from beam_pipelines import fs, manifest
from beam_pipelines.options import make_pipeline_options
from beam_pipelines.shards import EnrichTables, ShardRecord, WriteJson, WriteShards, shard_glob, table_glob
from beam_pipelines.stages.analyze import raw_tfxio, recipe_transform
from beam_pipelines.stages.split import _ParseTableLineFn, table_columns
from transforms.config import DatasetConfig
from transforms.splitting import SPLITS

_LOG = logging.getLogger(__name__)
STAGE = "normalize"
SUMMARY_FILE = "_summary.json"


class _EncodeExamplesFn(beam.DoFn):
    """Transformed record batch -> ShardRecords (serialized tf.Example encoded by tfx_bsl in C++ + base row)."""

    def __init__(self, schema_bytes: bytes):
        self._schema_bytes = schema_bytes
        self._encoder = None
        self._examples = Metrics.counter(STAGE, "examples_transformed")

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder(schema_pb2.Schema.FromString(self._schema_bytes))

    def process(self, element):
        record_batch, _ = element
        columns = {
            name: record_batch.column(record_batch.schema.get_field_index(name)).flatten().to_pylist()
            for name in ("uid", "target_id", "label")
        }
        examples = self._encoder.encode(record_batch)
        self._examples.inc(len(examples))
        for uid, target_id, label, example in zip(*columns.values(), examples, strict=True):
            uid = uid.decode("utf-8")
            yield ShardRecord(uid, example, {"uid": uid, "target_id": target_id.decode("utf-8"), "label": label})


class TransformSplit(beam.PTransform):
    """Serialized raw records of one split + the train ``transform_fn`` -> ShardRecords of normalized examples."""

    def __init__(self, source, transform_fn, schema_bytes: bytes):
        super().__init__()
        self._source = source
        self._transform_fn = transform_fn
        self._schema_bytes = schema_bytes

    def expand(self, records):
        batches = records | "ToRecordBatches" >> self._source.RawRecordToRecordBatch()
        transformed, _ = (
            (batches, self._source.TensorAdapterConfig()),
            self._transform_fn,
        ) | "TransformDataset" >> tft_beam.TransformDataset(output_record_batches=True)
        return transformed | "EncodeExamples" >> beam.ParDo(_EncodeExamplesFn(self._schema_bytes))


def run_normalize(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs the normalize stage for every split of ``out`` and returns the updated manifest."""
    run = manifest.begin_stage(out, STAGE, overwrite, requires="analyze")
    stats_dir = fs.join(out, "stats")
    schema_bytes = tft.TFTransformOutput(stats_dir).transformed_metadata.schema.SerializeToString()
    per_shard = config.split.examples_per_shard
    raw_spec = recipe_transform(config).raw_feature_spec
    started = time.monotonic()
    with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        with tft_beam.Context(temp_dir=run.tmp_path("tft_tmp"), force_tf_compat_v1=True):
            transform_fn = pipeline | "ReadTransformFn" >> tft_beam.ReadTransformFn(stats_dir)
            pairs = []
            for split in SPLITS:
                split_dir = fs.join(out, "split", split)
                source = raw_tfxio(shard_glob(split_dir, split), raw_spec)
                header = table_columns(split_dir)
                records = pipeline | f"ReadSplit[{split}]" >> source.RawRecordBeamSource()
                examples = records | f"TransformSplit[{split}]" >> TransformSplit(source, transform_fn, schema_bytes)
                rows = (
                    pipeline
                    | f"ReadDataTables[{split}]" >> beam.io.ReadFromText(table_glob(split_dir), skip_header_lines=1)
                    | f"ParseDataTables[{split}]" >> beam.ParDo(_ParseTableLineFn(header))
                )
                columns = [c for c in header if c != "shard"]
                shards = examples | f"WriteShards[{split}]" >> WriteShards(
                    run.tmp_path(f"norm/{split}"), f"norm_{split}", per_shard, (), STAGE
                )
                (shards, rows) | f"EnrichTables[{split}]" >> EnrichTables(run.tmp_path(f"norm/{split}"), columns)
                pairs.append(records | f"SeenPairs[{split}]" >> beam.Map(lambda _, s=split: (f"{s}/seen", 1)))
                pairs.append(examples | f"WrittenPairs[{split}]" >> beam.Map(lambda _, s=split: (f"{s}/written", 1)))
            _ = pairs | "FlattenCounts" >> beam.Flatten() | "WriteSummary" >> WriteJson(run.tmp_path(SUMMARY_FILE))
    counts = json.loads(fs.read_text(run.tmp_path(SUMMARY_FILE)))
    fs.delete_tree(run.tmp_path("tft_tmp"))
    splits = {s: {"seen": counts.get(f"{s}/seen", 0), "examples": counts.get(f"{s}/written", 0)} for s in SPLITS}
    summary = {
        "seen": sum(v["seen"] for v in splits.values()),
        "written": sum(v["examples"] for v in splits.values()),
        "rejected": 0,
        "splits": splits,
        "seconds": round(time.monotonic() - started, 2),
    }
    _LOG.info("normalize: %s", {s: v["examples"] for s, v in splits.items()})
    return manifest.finish_stage(run, summary)
