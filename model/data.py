"""Dataset checks and the tf.data input pipeline over a normalized sigforge dataset (docs/ARCHITECTURE.md section 3).

Layout read (contract, ``transforms/contract.py``)::

    DATA/manifest.json
    DATA/{stats_subdir}/transformed_metadata/     tf.Transform schema: the transformed feature spec ("stats")
    DATA/{subdir}/{split}/norm_{split}_shard_0001-NNNN.tfrecord[.gz] (+ data_tbl_0001-NNNN.csv), subdir "norm"
                                                  or "filtered"; a k-fold dataset's iteration: norm/cv_XX with
                                                  stats/cv_XX (model/kfold.py)

:func:`check_dataset` validates all of it before any model is built and raises a :class:`DatasetError` subclass
whose message names the path, split, shard or feature at fault. :func:`make_dataset` reads a split:
files listed with ``tf.io.gfile.glob``, parallel interleave of ``TFRecordDataset``, (cache), (seeded shuffle,
train only), batch, ``tf.io.parse_example`` on the batch, (augmentation, train only: ``model/augment.py``), prefetch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from model.augment import augment_batches
from model.config import DataConfig, TrainerConfig
from model.errors import CorruptShardError, DatasetError, FeatureSpecError
from model.feature_spec import METADATA_DIR, read_feature_spec, resolve_input_spec
from transforms.audit import audit_dataset
from transforms.contract import (
    LABEL,
    MANIFEST,
    NORM_DIR,
    SHARD_NUMBER,
    SPLITS,
    TABLE_PATTERN,
    norm_prefix,
    shard_patterns,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitInfo:
    """One split's shards; counts are None when not known (verify_shards != full and no data tables)."""

    name: str
    directory: str
    shards: tuple[str, ...]
    tables: tuple[str, ...]
    n_bytes: int
    n_examples: int | None = None
    n_positive: int | None = None
    # True when n_examples was counted from the shards themselves (verify_shards: full).
    counted: bool = False

    @property
    def label_counts(self) -> dict[int, int] | None:
        if self.n_examples is None or self.n_positive is None:
            return None
        return {0: self.n_examples - self.n_positive, 1: self.n_positive}


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`check_dataset` established about a dataset folder."""

    data_dir: str
    manifest_path: str
    manifest_sha256: str
    feature_spec: Mapping[str, Any]
    input_spec: Mapping[str, tuple[int, ...]]
    parse_spec: Mapping[str, Any]
    splits: Mapping[str, SplitInfo] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            name: {
                "shards": len(s.shards),
                "bytes": s.n_bytes,
                "examples": s.n_examples,
                "label_counts": s.label_counts,
            }
            for name, s in self.splits.items()
        }


def join(*parts: str) -> str:
    """Path join that keeps ``gs://`` prefixes intact."""
    return posixpath.join(*parts)


def read_manifest(data_dir: str) -> tuple[str, str, dict[str, Any]]:
    """(path, sha256 hex of its bytes, parsed JSON) of ``DATA/manifest.json``."""
    path = join(data_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        raise DatasetError(f"dataset manifest {path} is missing (is {data_dir} a sigforge dataset folder?)")
    with tf.io.gfile.GFile(path, "rb") as handle:
        raw = handle.read()
    try:
        manifest = json.loads(raw)
    except ValueError as error:
        raise DatasetError(f"dataset manifest {path} is not valid JSON: {error}") from None
    return path, hashlib.sha256(raw).hexdigest(), manifest


def list_shards(data_dir: str, split: str, subdir: str = NORM_DIR) -> tuple[str, list[str]]:
    """(split folder, sorted shard paths); raises DatasetError for a missing/empty folder or missing shards."""
    directory = join(data_dir, subdir, split)
    if not tf.io.gfile.isdir(directory):
        raise DatasetError(f"split folder {directory} is missing (expected {subdir}/{{{','.join(SPLITS)}}}/)")
    patterns = shard_patterns(norm_prefix(split))
    shards = sorted({p for pattern in patterns for p in tf.io.gfile.glob(join(directory, pattern))})
    if not shards:
        raise DatasetError(f"split folder {directory} has no TFRecord shards ({patterns[0]})")
    totals = set()
    numbers = set()
    for path in shards:
        match = SHARD_NUMBER.search(posixpath.basename(path))
        if match:
            numbers.add(int(match.group(1)))
            totals.add(int(match.group(2)))
    if len(totals) > 1:
        raise DatasetError(f"split folder {directory} mixes shard sets of different totals {sorted(totals)}")
    if totals:
        total = totals.pop()
        missing = sorted(set(range(1, total + 1)) - numbers)
        if missing:
            raise DatasetError(
                f"split folder {directory} is missing shard(s) {missing} of {total} "
                f"(found {len(shards)}: {[posixpath.basename(p) for p in shards]})",
                code="missing_shard",
            )
    return directory, shards


def interleave_records(files: list[str], cycle: int, seed: int, shuffle: bool) -> tf.data.Dataset:
    """The serialized records of ``files``, read ``cycle`` files at a time in a deterministic interleave; the
    file order is reshuffled every epoch when ``shuffle``."""
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    compression = _compression(files[0])
    return files_ds.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=compression, buffer_size=8 << 20),
        cycle_length=min(cycle, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def scan_shard(path: str, parse_spec: Mapping[str, Any], label_feature: str, full: bool = True) -> tuple[int, int]:
    """Reads a shard through once (or only its first record) and parses it; returns (examples, positives).

    Raises CorruptShardError for an unreadable shard, FeatureSpecError when its examples do not parse with the
    spec, DatasetError for labels other than 0/1.
    """
    records = tf.data.TFRecordDataset(path, compression_type=_compression(path), buffer_size=8 << 20)
    if not full:
        records = records.take(1)
    labels = records.batch(512).map(
        lambda batch: tf.reshape(tf.io.parse_example(batch, parse_spec)[label_feature], [-1])
    )
    zero = tf.constant(0, tf.int64)

    def count(state, batch_labels):
        n, pos, bad = state
        is_bad = tf.logical_and(tf.not_equal(batch_labels, 0), tf.not_equal(batch_labels, 1))
        return (
            n + tf.size(batch_labels, out_type=tf.int64),
            pos + tf.reduce_sum(tf.cast(tf.equal(batch_labels, 1), tf.int64)),
            bad + tf.reduce_sum(tf.cast(is_bad, tf.int64)),
        )

    try:
        n, pos, bad = (int(v) for v in labels.reduce((zero, zero, zero), count))
    except tf.errors.InvalidArgumentError as error:
        raise FeatureSpecError(
            f"shard {path}: examples do not parse with the transformed feature spec: {_first_line(error)}"
        ) from None
    except tf.errors.OpError as error:
        raise CorruptShardError(f"shard {path} is corrupt or not a TFRecord file: {_first_line(error)}") from None
    if bad:
        raise DatasetError(f"shard {path}: {bad} example(s) have '{label_feature}' other than 0 or 1")
    return n, pos


def _first_line(error: tf.errors.OpError) -> str:
    return (error.message or str(error)).strip().splitlines()[0]


def read_data_tables(tables: Iterable[str]) -> list[dict[str, str]]:
    """All rows of the given data-table CSVs (one row per example: uid,target_id,label,shard,...)."""
    rows: list[dict[str, str]] = []
    for path in tables:
        with tf.io.gfile.GFile(path, "r") as handle:
            rows.extend(csv.DictReader(io.StringIO(handle.read())))
    return rows


def _count_table_rows(tables: Sequence[str]) -> int:
    return len(read_data_tables(tables))


def check_dataset(data_dir: str, config: TrainerConfig | None = None, splits: Sequence[str] = SPLITS) -> DatasetInfo:
    """Validates a dataset folder for training/evaluation with ``config``; raises DatasetError subclasses.

    Checks, in order: the folder and ``manifest.json``; the tf.Transform metadata and that its feature spec
    provides the label, uid and every model input with the configured shapes; each split folder has a
    complete, non-empty shard set; each shard reads through (``data.verify_shards``: every record, or the first
    only) and parses with the spec, with 0/1 labels; the data tables (when present) list as many rows as the
    shards hold examples. Without ``config`` (e.g. a dataset audit) the model inputs are not checked and the
    default data settings apply (``norm/``, ``label``, ``uid``, full shard read).
    """
    check_inputs = config is not None
    config = config or TrainerConfig()
    if not tf.io.gfile.isdir(data_dir):
        raise DatasetError(f"dataset folder {data_dir} does not exist")
    manifest_path, manifest_sha, _ = read_manifest(data_dir)
    feature_spec = read_feature_spec(data_dir, config.data.stats_subdir)
    source = f"the transformed feature spec at {join(data_dir, config.data.stats_subdir, METADATA_DIR)}"
    input_spec = resolve_input_spec(feature_spec, config, source, check_inputs)
    names = [*input_spec, config.data.label_feature, config.data.uid_feature]
    parse_spec = {name: feature_spec[name] for name in names}
    mode = config.data.verify_shards
    infos: dict[str, SplitInfo] = {}
    for split in splits:
        directory, shards = list_shards(data_dir, split, config.data.subdir)
        tables = sorted(tf.io.gfile.glob(join(directory, TABLE_PATTERN)))
        n_bytes = sum(tf.io.gfile.stat(p).length for p in shards)
        n_examples = n_positive = None
        if mode != "off":
            counts = [scan_shard(p, parse_spec, config.data.label_feature, full=mode == "full") for p in shards]
            if mode == "full":
                n_examples = sum(c[0] for c in counts)
                n_positive = sum(c[1] for c in counts)
                if n_examples == 0:
                    raise DatasetError(f"split folder {directory} has shards but no examples")
                if tables and (n_rows := _count_table_rows(tables)) != n_examples:
                    raise DatasetError(
                        f"split {split}: data tables in {directory} list {n_rows} rows but the shards hold "
                        f"{n_examples} examples",
                        code="count_mismatch",
                    )
        if n_examples is None and tables:
            rows = read_data_tables(tables)
            n_examples = len(rows)
            n_positive = sum(1 for r in rows if str(r.get(LABEL, "")).strip() == "1")
        infos[split] = SplitInfo(
            split, directory, tuple(shards), tuple(tables), n_bytes, n_examples, n_positive, counted=mode == "full"
        )
        logger.info("split %s: %d shard(s), %.1f MB, %s examples", split, len(shards), n_bytes / 1e6, n_examples or "?")
    # Dataset-level checks of the producer (leakage, lost inputs, count mismatches, non-finite statistics).
    problems = audit_dataset(data_dir)
    if problems:
        listed = "\n  ".join(problems[:20])
        raise DatasetError(
            f"dataset {data_dir} does not pass `sigforge audit` ({len(problems)} problems):\n  {listed}",
            code="audit_failed",
        )
    return DatasetInfo(
        data_dir=data_dir,
        manifest_path=manifest_path,
        manifest_sha256=manifest_sha,
        feature_spec=feature_spec,
        input_spec=input_spec,
        parse_spec=parse_spec,
        splits=infos,
    )


def should_cache(split: SplitInfo, data: DataConfig) -> bool:
    """``data.cache``: true/false, or "auto" = the split's shards total at most ``data.cache_max_mb``."""
    if data.cache == "auto":
        return split.n_bytes <= data.cache_max_mb * 1e6
    return bool(data.cache)


def make_dataset(
    info: DatasetInfo,
    split: str,
    config: TrainerConfig,
    *,
    training: bool = False,
    with_uid: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batched ``(inputs, label)`` (or ``(inputs, label, uid)``) over one split.

    ``inputs`` maps each model input name to a float32 ``(batch, *shape)`` tensor, ``label`` is float32
    ``(batch, 1)``, ``uid`` string ``(batch,)``. ``training`` turns on file and record shuffling (seeded by
    ``seed``, default ``config.seed``, reshuffled each epoch), augmentations and the train batch size.
    """
    data = config.data
    seed = config.seed if seed is None else seed
    split_info = info.splits[split]
    files = list(split_info.shards)
    inputs = list(config.model.input_features)
    parse_spec = dict(info.parse_spec)

    records = interleave_records(files, data.interleave_cycle, seed, shuffle=training)
    # Cache the serialized records of splits read every epoch (train, val during fit), when they fit.
    if not with_uid and split != "test" and should_cache(split_info, data):
        records = records.cache()
    if training:
        records = records.shuffle(data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batch_size = data.batch_size if training else data.eval_batch
    batches = records.batch(batch_size)
    if split_info.counted:
        # Known length: Keras sizes epochs and progress bars without a first "ran out of data" pass.
        batches = batches.apply(tf.data.experimental.assert_cardinality(-(-split_info.n_examples // batch_size)))

    def parse(serialized):
        example = tf.io.parse_example(serialized, parse_spec)
        features = {name: tf.cast(example[name], tf.float32) for name in inputs}
        label = tf.reshape(tf.cast(example[data.label_feature], tf.float32), [-1, 1])
        if with_uid:
            return features, label, tf.reshape(example[data.uid_feature], [-1])
        return features, label

    ds = batches.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and data.augment.enabled:
        ds = augment_batches(ds, data.augment, seed)
    return ds.prefetch(tf.data.AUTOTUNE)
