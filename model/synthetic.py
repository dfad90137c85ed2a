"""A tiny normalized dataset that follows the dataset-folder contract, for tests and trainer smoke runs.

It stands in for the pipeline's output (docs/ARCHITECTURE.md section 3): ``manifest.json``, tf.Transform
``stats/transformed_metadata``, ``norm/{split}/norm_{split}_shard_0001-NNNN.tfrecord`` and
``data_tbl_0001-NNNN.csv`` (uid,target_id,label,shard,snr). Values are standard normal noise; positives carry a
planted signal whose amplitude grows with their ``snr`` column, so a small model can learn it.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from transforms.contract import (
    BASE_COLUMNS,
    LABEL,
    MANIFEST,
    NORM_DIR,
    STATS_DIR,
    STRAIN,
    TARGET_ID,
    UID,
    norm_prefix,
    shard_name,
    table_name,
)

DEFAULT_COUNTS = {"train": 64, "val": 32, "test": 32}


def _signal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A unit-peak sine-Gaussian burst along the last axis (random centre), the same in every channel."""
    if not shape:
        return np.ones((), dtype=np.float64)
    n = shape[-1]
    t = np.arange(n, dtype=np.float64)
    centre = rng.uniform(0.3, 0.7) * n
    width = max(n / 16.0, 1.0)
    burst = np.exp(-0.5 * ((t - centre) / width) ** 2) * np.sin(2 * np.pi * 8.0 * t / n)
    return np.broadcast_to(burst, shape)


def write_fake_dataset(
    out_dir: str,
    float_features: Mapping[str, tuple[int, ...]] | None = None,
    counts: Mapping[str, int] | None = None,
    shards_per_split: int = 2,
    signal_scale: float = 0.25,
    seed: int = 0,
    with_tables: bool = True,
) -> str:
    """Writes the dataset under ``out_dir`` and returns ``out_dir``.

    Args:
      float_features: name -> per-example shape of the float32 model inputs (default ``strain`` (3, 4096)).
      counts: examples per split (half of them positives, alternating labels).
      shards_per_split: TFRecord shards per split (examples dealt round-robin).
      signal_scale: planted signal amplitude per unit of SNR (positives' SNR is uniform in [2, 20]).
      with_tables: also write the data-table CSVs.
    """
    float_features = dict(float_features or {STRAIN: (3, 4096)})
    counts = dict(counts or DEFAULT_COUNTS)
    rng = np.random.default_rng(seed)
    spec = {name: tf.io.FixedLenFeature(list(shape), tf.float32) for name, shape in float_features.items()}
    spec.update(
        {
            UID: tf.io.FixedLenFeature([], tf.string),
            TARGET_ID: tf.io.FixedLenFeature([], tf.string),
            LABEL: tf.io.FixedLenFeature([], tf.int64),
        }
    )
    manifest = {"name": "synthetic", "splits": {}, "features": {k: list(v) for k, v in float_features.items()}}
    for split, n_examples in counts.items():
        directory = posixpath.join(out_dir, NORM_DIR, split)
        tf.io.gfile.makedirs(directory)
        rows = [[] for _ in range(shards_per_split)]
        names = [shard_name(norm_prefix(split), i, shards_per_split) for i in range(shards_per_split)]
        writers = [tf.io.TFRecordWriter(posixpath.join(directory, name)) for name in names]
        for i in range(n_examples):
            label = i % 2
            uid = f"{split}-{i:05d}"
            snr = float(rng.uniform(2.0, 20.0)) if label else 0.0
            feature = {
                UID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[uid.encode()])),
                TARGET_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"t{uid}".encode()])),
                LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            for name, shape in float_features.items():
                values = rng.standard_normal(shape)
                if label:
                    values = values + signal_scale * snr * _signal(shape, rng)
                feature[name] = tf.train.Feature(
                    float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel())
                )
            shard = i % shards_per_split
            writers[shard].write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            rows[shard].append([uid, f"t{uid}", label, names[shard], snr or ""])
        for writer in writers:
            writer.close()
        if with_tables:
            for index, shard_rows in enumerate(rows):
                buffer = io.StringIO()
                table = csv.writer(buffer, lineterminator="\n")
                table.writerow([*BASE_COLUMNS, "snr"])
                table.writerows(shard_rows)
                with tf.io.gfile.GFile(posixpath.join(directory, table_name(index, shards_per_split)), "w") as handle:
                    handle.write(buffer.getvalue())
        manifest["splits"][split] = {"examples": n_examples, "positives": n_examples // 2}
    write_transformed_metadata(posixpath.join(out_dir, STATS_DIR), spec)
    total = sum(counts.values())
    manifest["stages"] = {
        "normalize": {
            "seen": total,
            "written": total,
            "rejected": 0,
            "splits": {split: {"seen": n, "examples": n} for split, n in counts.items()},
        }
    }
    with tf.io.gfile.GFile(posixpath.join(out_dir, MANIFEST), "w") as handle:
        handle.write(json.dumps(manifest, indent=2))
    return out_dir


def write_transformed_metadata(stats_dir: str, feature_spec: Mapping[str, tf.io.FixedLenFeature]) -> str:
    """Writes ``stats_dir/transformed_metadata`` exactly as tf.Transform does; returns its path."""
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    path = posixpath.join(stats_dir, "transformed_metadata")
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata.from_feature_spec(dict(feature_spec)), path)
    return path
