"""Normalize stage: apply the train ``transform_fn`` to every split -> ``OUT/norm/{split}/norm_{split}_shard_*``.

Raw split records are decoded into Arrow record batches by tfx_bsl's decoder (the TFXIO source's), transformed
by ``tft_beam.TransformDataset`` with ``output_record_batches=True``, and encoded back to tf.Examples in C++
(tfx_bsl's ``RecordBatchToExamplesEncoder``): no Python instance dicts, no per-float Python work. The three
splits share one set of steps (one read, decode, TransformDataset and WriteShards): the stage's fixed cost on the
FnApiRunner grows with its steps. Each shard is read with its data table, and each record carries its
split and its table row through tf.Transform as passthrough columns, so the normalized tables are written once,
with every column, by the shard writer (no join after it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics import Metrics
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from beam_pipelines.dataset import fs, manifest
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.counting import Tally
from beam_pipelines.io.readers import ReadWholeFiles, read_shard_with_table_by_folder, shard_glob
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.sink import WriteShards, in_global_window
from beam_pipelines.io.tables import table_columns
from beam_pipelines.stages import placeholders
from beam_pipelines.stages.analyze import RECORD_BATCH_SIZE, raw_schema
from beam_pipelines.stages.runner import StageContext, check_read_all, run_stage, split_mode
from transforms.config import DatasetConfig
from transforms.contract import NORM_DIR, SPLIT_DIR, SPLITS, STATS_DIR, norm_prefix
from transforms.recipes import Recipe, get_recipe

_LOG = logging.getLogger(__name__)
STAGE = "normalize"


class _EncodeExamplesFn(beam.DoFn):
    """Transformed record batch (with the passthrough columns) -> ``(split, ShardRecord)`` (serialized tf.Example
    encoded by tfx_bsl in C++ + the example's data-table row); quality flags as ``{split}/{flag}`` on
    ``QUALITY``."""

    def __init__(self, schema_bytes: bytes):
        self._schema_bytes = schema_bytes
        self._encoder = None
        self._examples = Metrics.counter(STAGE, "examples_transformed")

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder(schema_pb2.Schema.FromString(self._schema_bytes))

    def process(self, element):
        record_batch, _ = element
        splits, table_rows, record_batch = pop_passthrough_columns(record_batch)
        columns = {
            name: record_batch.column(record_batch.schema.get_field_index(name)).flatten().to_pylist()
            for name in ("uid", "target_id", "label")
        }
        # tfx_bsl's encoder does not fix the order of the feature map: re-serialize deterministically so that a
        # rerun writes the same bytes.
        examples = [deterministic_bytes(example) for example in self._encoder.encode(record_batch)]
        quality = example_quality(record_batch)
        self._examples.inc(len(examples))
        for split, table_row, uid, target_id, label, example, flag in zip(
            splits, table_rows, *columns.values(), examples, quality, strict=True
        ):
            uid = uid.decode("utf-8")
            row = {**table_row, "uid": uid, "target_id": target_id.decode("utf-8"), "label": label}
            if flag:
                yield beam.pvalue.TaggedOutput(QUALITY, f"{split}/{flag}")
            yield split, ShardRecord(uid, example, row)


# The split and the data-table row (JSON) of every record ride through tf.Transform as passthrough columns
# (``tft_beam.Context``'s passthrough_keys: hidden from the graph, appended to the output record batch), so one
# TransformDataset serves every split, each transformed example is routed back to its own split's shards, and its
# table row is written beside it.
SPLIT_COLUMN = "__sigforge_split"
ROW_COLUMN = "__sigforge_row"
PASSTHROUGH = (SPLIT_COLUMN, ROW_COLUMN)


def _passthrough_field(name: str):
    import pyarrow as pa

    return pa.field(name, pa.large_list(pa.large_binary()))


def with_passthrough_columns(record_batch, split: str, rows: list[dict[str, Any]]):
    """A decoded record batch of one split plus the passthrough columns: ``SPLIT_COLUMN`` (``[split]`` per row)
    and ``ROW_COLUMN`` (each row's data-table row as JSON, in the batch's order)."""
    import pyarrow as pa

    values = {
        SPLIT_COLUMN: [[split.encode("utf-8")]] * record_batch.num_rows,
        ROW_COLUMN: [[json.dumps(row).encode("utf-8")] for row in rows],
    }
    for name in PASSTHROUGH:
        field = _passthrough_field(name)
        record_batch = record_batch.append_column(field, pa.array(values[name], type=field.type))
    return record_batch


def pop_passthrough_columns(record_batch) -> tuple[list[str], list[dict[str, Any]], Any]:
    """(the split of every row, its data-table row, the record batch without the passthrough columns) of a
    transformed record batch."""
    values = {}
    for name in PASSTHROUGH:
        index = record_batch.schema.get_field_index(name)
        values[name] = record_batch.column(index).flatten().to_pylist()
        record_batch = record_batch.remove_column(index)
    splits = [value.decode("utf-8") for value in values[SPLIT_COLUMN]]
    return splits, [json.loads(value) for value in values[ROW_COLUMN]], record_batch


def passthrough_adapter_config(raw_spec: dict[str, Any]):
    """The TensorAdapterConfig of the raw records (the TFXIO source's: the decoder's Arrow schema and the
    schema's tensor representations), with the passthrough columns in its Arrow schema (columns, not tensors)."""
    from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

    schema = raw_schema(raw_spec)
    arrow_schema = example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString()).ArrowSchema()
    for name in PASSTHROUGH:
        arrow_schema = arrow_schema.append(_passthrough_field(name))
    representations = tensor_representation_util.InferTensorRepresentationsFromMixedSchema(schema)
    return tensor_adapter.TensorAdapterConfig(arrow_schema, representations)


QUALITY = "quality"
NON_FINITE, COLLAPSED = "non_finite", "collapsed"
# A normalized example whose float values spread less than this (std) has collapsed to a constant: the mark of
# statistics wrecked by an outlier (every other example divided by a huge std) or of a degenerate input.
COLLAPSED_STD = 1e-3


def deterministic_bytes(serialized: bytes) -> bytes:
    """A serialized tf.Example re-serialized with a deterministic map order."""
    from tensorflow.core.example import example_pb2

    return example_pb2.Example.FromString(serialized).SerializeToString(deterministic=True)


def example_quality(record_batch) -> list[str | None]:
    """Per row of a transformed record batch: NON_FINITE if any float value is NaN/inf, COLLAPSED if all its float
    values together have a std below COLLAPSED_STD, else None."""
    import pyarrow as pa

    values: list[list[np.ndarray]] = [[] for _ in range(record_batch.num_rows)]
    for column in record_batch.columns:
        if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
            continue
        if not pa.types.is_floating(column.type.value_type):
            continue
        flat = np.asarray(column.flatten(), dtype=np.float64)
        offsets = np.asarray(column.offsets)
        for row in range(record_batch.num_rows):
            values[row].append(flat[offsets[row] : offsets[row + 1]])
    flags: list[str | None] = []
    for parts in values:
        joined = np.concatenate(parts) if parts else np.zeros(0)
        if not np.isfinite(joined).all():
            flags.append(NON_FINITE)
        elif joined.size > 1 and joined.std() < COLLAPSED_STD:
            flags.append(COLLAPSED)
        else:
            flags.append(None)
    return flags


def check_normalized(summary: dict[str, Any]) -> None:
    """The normalize stage's own output check: every split read what the split stage wrote and wrote what it
    read, no value is NaN/inf, and the normalized train examples have not collapsed to constants (statistics
    wrecked by an outlier)."""
    for split, counts in summary["splits"].items():
        check_read_all(f"normalize: split {split}", counts["seen"], counts.get("in_split"), "the split stage")
        if counts["seen"] != counts["examples"]:
            raise StageError(
                f"normalize: split {split} read {counts['seen']} examples but wrote {counts['examples']}",
                code="count_mismatch",
            )
        if counts[NON_FINITE]:
            raise StageError(
                f"normalize: {counts[NON_FINITE]} {split} examples have NaN/inf values after normalization; "
                "check OUT/stats (a zero or non-finite statistic) and the inputs",
                code="non_finite",
            )
    train = summary["splits"]["train"]
    if train["examples"] and train[COLLAPSED] * 2 > train["examples"]:
        raise StageError(
            f"normalize: {train[COLLAPSED]} of {train['examples']} normalized train examples have collapsed to a "
            f"constant (std < {COLLAPSED_STD}): the train statistics are dominated by an outlier; run "
            "`sigforge audit` and look for an example with a huge amplitude",
            code="collapsed",
        )


class _DecodeSplitBatchesFn(beam.DoFn):
    """``(split, ShardRecord)`` -> record batches of one split each, with the passthrough columns.

    Batches like the TFXIO source's ``RawRecordToRecordBatch(RECORD_BATCH_SIZE)`` does for one split (Beam's
    BatchElements: ``RECORD_BATCH_SIZE`` records in arrival order, the rest at the end of the bundle), but for
    every split at once, and decodes with the same tfx_bsl decoder. Decoding the splits in one step, rather than
    one TFXIO decode per split flattened into tf.Transform, keeps the whole stage fused: a Flatten is a stage
    boundary on the FnApiRunner, where the decoded batches were held and re-encoded."""

    def __init__(self, raw_schema_bytes: bytes):
        self._raw_schema_bytes = raw_schema_bytes
        self._decoder = None
        self._pending: dict[str, list[ShardRecord]] = {}

    def setup(self):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(self._raw_schema_bytes)

    def start_bundle(self):
        self._pending = {}

    def process(self, pair):
        split, record = pair
        pending = self._pending.setdefault(split, [])
        pending.append(record)
        if len(pending) >= RECORD_BATCH_SIZE:
            yield self._decode(split, self._pending.pop(split))

    def finish_bundle(self):
        for split, records in self._pending.items():
            yield in_global_window(self._decode(split, records))
        self._pending = {}

    def _decode(self, split: str, records: list[ShardRecord]):
        batch = self._decoder.DecodeBatch([record.example for record in records])
        return with_passthrough_columns(batch, split, [record.row for record in records])


class TransformSplits(beam.PTransform):
    """``(split, raw ShardRecord)`` pairs + the train ``transform_fn`` -> ``examples``: ``(split, ShardRecord)``
    of normalized examples with their table rows, and ``QUALITY``: ``{split}/{flag}``. One TransformDataset
    applies the graph to every split; the split and the row ride through it as passthrough columns."""

    def __init__(self, raw_spec: dict[str, Any], transform_fn, schema_bytes: bytes):
        super().__init__()
        self._raw_spec = raw_spec
        self._transform_fn = transform_fn
        self._schema_bytes = schema_bytes

    def expand(self, records):
        raw_schema_bytes = raw_schema(self._raw_spec).SerializeToString()
        batches = records | "DecodeBatches" >> beam.ParDo(_DecodeSplitBatchesFn(raw_schema_bytes))
        with tft_beam.Context(passthrough_keys=set(PASSTHROUGH)):
            transformed, _ = (
                (batches, passthrough_adapter_config(self._raw_spec)),
                self._transform_fn,
            ) | "TransformDataset" >> tft_beam.TransformDataset(output_record_batches=True)
        return transformed | "EncodeExamples" >> beam.ParDo(_EncodeExamplesFn(self._schema_bytes)).with_outputs(
            QUALITY, main="examples"
        )


class NormalizeSplits(beam.PTransform):
    """Every split's raw shards + the train ``transform_fn`` (as ``tft_beam.ReadTransformFn`` gives it) ->
    ``{folder}/{split}/norm_{split}_shard_*`` with data tables of the split's columns; returns
    ``({split}/seen|written, 1)`` count pairs. Applied to the pipeline:
    ``pipeline | NormalizeSplits(transform_fn, ...)``."""

    def __init__(
        self,
        transform_fn,
        split_root: str,
        folder: str,
        raw_spec: dict[str, Any],
        schema_bytes: bytes,
        per_shard: int,
        progress: beam.PTransform | None = None,
    ):
        super().__init__()
        self._progress = progress
        self._transform_fn = transform_fn
        self._split_root = split_root
        self._folder = folder
        self._raw_spec = raw_spec
        self._schema_bytes = schema_bytes
        self._per_shard = per_shard

    def expand(self, pipeline):
        split_dirs = {split: fs.join(self._split_root, split) for split in SPLITS}
        patterns = [shard_glob(split_dirs[split], split) for split in SPLITS]
        records = pipeline | "ReadSplits" >> ReadWholeFiles(patterns, read_shard_with_table_by_folder)
        if self._progress is not None:
            records = records | "Progress" >> self._progress
        encoded = records | "TransformSplits" >> TransformSplits(self._raw_spec, self._transform_fn, self._schema_bytes)
        pairs = [
            records | "SeenPairs" >> Tally(lambda pair: [f"{pair[0]}/seen"]),
            encoded[QUALITY] | "QualityPairs" >> Tally(lambda key: [key]),
        ]
        destinations = {split: (fs.join(self._folder, split), norm_prefix(split)) for split in SPLITS}
        columns = {split: [c for c in table_columns(split_dirs[split]) if c != "shard"] for split in SPLITS}
        _ = encoded.examples | "WriteShards" >> WriteShards.per_key(destinations, self._per_shard, columns, STAGE)
        pairs.append(encoded.examples | "WrittenPairs" >> Tally(lambda pair: [f"{pair[0]}/written"]))
        return pairs | "FlattenCounts" >> beam.Flatten()


def run_normalize(
    config: DatasetConfig,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Runs the normalize stage for every split of ``out`` and returns the updated manifest. ``recipe`` is
    ``config.recipe``'s (``sigforge run`` resolves it once), looked up when not given."""
    stats_dir = fs.join(out, STATS_DIR)
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    raw_spec = recipe.raw_feature_spec(config)
    if split_mode(out, config, STAGE) == "kfold":
        raise StageError(
            f"{out} holds k folds: normalize them with normalize_folds.run_normalize_stage (`sigforge normalize` does)",
            code="split_mode",
        )

    def work(ctx: StageContext) -> dict[str, Any]:
        if ctx.plans is not None:  # a dry run: analyze wrote no transform_fn; its schema is traced instead
            metadata = placeholders.transformed_metadata(get_recipe(config.recipe), config)
            read_transform_fn = placeholders.PlannedTransformFn(stats_dir, metadata)
            ctx.plans.note("normalize: the transformed schema is traced from the recipe, not read from OUT/stats")
        else:
            metadata = tft.TFTransformOutput(stats_dir).transformed_metadata
            read_transform_fn = tft_beam.ReadTransformFn(stats_dir)
        schema_bytes = metadata.schema.SerializeToString()
        split_stage = {} if ctx.plans else manifest.read_manifest(out).get("stages", {}).get("split", {})
        total = split_stage.get("written")
        expected = {s: split_stage.get("splits", {}).get(s, {}).get("examples") for s in SPLITS}
        with ctx.pipeline(tft=True, total=total) as pipeline:
            transform_fn = pipeline | "ReadTransformFn" >> read_transform_fn
            _ = (
                pipeline
                | "NormalizeSplits"
                >> NormalizeSplits(
                    transform_fn,
                    fs.join(out, SPLIT_DIR),
                    ctx.tmp_path(NORM_DIR),
                    raw_spec,
                    schema_bytes,
                    config.split.examples_per_shard,
                    progress=ctx.progress(),
                )
                | "WriteSummary" >> ctx.summary()
            )
        if ctx.plans is not None:  # a dry run: built, not run
            return {}
        counts = ctx.counts()
        splits = {
            s: {
                "in_split": expected[s],
                "seen": counts[f"{s}/seen"],
                "examples": counts[f"{s}/written"],
                NON_FINITE: counts[f"{s}/{NON_FINITE}"],
                COLLAPSED: counts[f"{s}/{COLLAPSED}"],
            }
            for s in SPLITS
        }
        return {
            "seen": sum(v["seen"] for v in splits.values()),
            "written": sum(v["examples"] for v in splits.values()),
            "rejected": 0,
            "splits": splits,
        }

    return run_stage(
        STAGE,
        out,
        work,
        beam_args=beam_args,
        overwrite=overwrite,
        requires="analyze",
        check=check_normalized,
        config=config,
    )
