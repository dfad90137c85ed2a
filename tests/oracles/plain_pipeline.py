"""The plain pipeline: the work of ``sigforge run`` as one single-process numpy + TensorFlow loop, the oracle that
``tests/e2e/test_plain_script.py`` pins sigforge against and the baseline that ``benchmarks/plain_script.py``
(its command line) times.

Same inputs, same config, same math (every numeric step is a ``transforms/`` function), no Beam and no
tf.Transform:

1. read the labels CSV (and the truth CSV when the config names one), match ``.npy`` files by id;
2. per sample: ``np.load`` -> ``strain.validate_strain`` (shape, finite) -> ``signal.bandpass`` -> float32,
   split by ``splitting.assign_split`` (sha256 of the target id, same fractions and salt), written to the
   split's raw shards (``tf.io.TFRecordWriter``, ``tf.train.Example`` with the strain as float32 bytes);
   train examples with a label in ``g2net.psd_labels`` add ``signal.periodogram_psd`` (periodic Tukey window)
   to the PSD sum on the way;
3. re-read the train shards: ``signal.whiten`` by the average PSD -> ``signal.apply_tukey`` ->
   ``signal.channel_moments`` summed -> ``signal.stats_from_moments`` (per-channel mean/std);
4. re-read every split: ``signal.normalize_strain`` -> float32 -> ``tf.train.Example`` whose ``strain`` is a
   FloatList of the 3 x 4096 values built from the numpy array (what a plain script writes for a
   ``FixedLenFeature([3, 4096], tf.float32)``), into ``OUT/norm/{split}/``.

Differences from sigforge, on purpose (a plain script would not do them): no unsplit ``OUT/tfrecords`` copy
(the split shards are the raw shards), shards roll over every ``examples_per_shard`` examples instead of a
sha256(uid) layout, no rejected-row CSVs unless something is rejected, no atomic publish. It writes
``OUT/plain_summary.json`` with per-step seconds, counts and the statistics (so a benchmark can check both
produced the same numbers).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from transforms.config import DatasetConfig  # noqa: E402
from transforms.recipes.g2net import signal
from transforms.recipes.g2net import strain as strain_lib
from transforms.splitting import SPLITS, assign_split  # noqa: E402

BASE_COLUMNS = ["uid", "target_id", "label", "shard"]


class ShardWriter:
    """Rolling TFRecord shards plus one data table per shard: ``{prefix}_shard_NNNN.tfrecord``."""

    def __init__(self, folder: str, prefix: str, per_shard: int, columns: list[str]):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.prefix, self.per_shard, self.columns = folder, prefix, per_shard, columns
        self.paths: list[str] = []
        self.count = 0
        self._writer = None
        self._rows: list[dict] = []

    def _roll(self) -> None:
        self._close_current()
        name = f"{self.prefix}_shard_{len(self.paths) + 1:04d}.tfrecord"
        self.paths.append(os.path.join(self.folder, name))
        self._writer = tf.io.TFRecordWriter(self.paths[-1])

    def _close_current(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        table = os.path.join(self.folder, f"data_tbl_{len(self.paths):04d}.csv")
        with open(table, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self._rows)
        self._writer, self._rows = None, []

    def write(self, serialized: bytes, row: dict) -> None:
        if self._writer is None or len(self._rows) >= self.per_shard:
            self._roll()
        self._writer.write(serialized)
        self._rows.append({**row, "shard": os.path.basename(self.paths[-1])})
        self.count += 1

    def close(self) -> None:
        self._close_current()


def bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def raw_example(uid: str, target_id: str, label: int, strain32: np.ndarray) -> bytes:
    """Raw/split record: the strain as one bytes feature of little-endian float32 (the sigforge raw layout)."""
    features = {
        "uid": bytes_feature(uid.encode()),
        "target_id": bytes_feature(target_id.encode()),
        "label": int_feature(label),
        "strain": bytes_feature(strain32.astype("<f4").tobytes()),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def norm_example(uid: bytes, target_id: bytes, label: int, strain32: np.ndarray) -> bytes:
    """Normalized record: ``strain`` as a FloatList of n_channels * n_samples values (FixedLenFeature)."""
    features = {
        "uid": bytes_feature(uid),
        "target_id": bytes_feature(target_id),
        "label": int_feature(label),
        "strain": tf.train.Feature(float_list=tf.train.FloatList(value=strain32.ravel())),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def read_raw(paths: list[str], shape: tuple[int, int]):
    """Yields (uid, target_id, label, strain float32 (n_channels, n_samples)) from raw shards."""
    for record in tf.data.TFRecordDataset(paths).as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        strain = np.frombuffer(feature["strain"].bytes_list.value[0], dtype="<f4").reshape(shape)
        yield (
            feature["uid"].bytes_list.value[0],
            feature["target_id"].bytes_list.value[0],
            int(feature["label"].int64_list.value[0]),
            strain,
        )


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run(config: DatasetConfig, input_dir: str, out: str) -> dict:
    build = analyze = config.section  # the g2net section holds the build and analyze settings
    split_cfg = config.split
    shape = (build.n_channels, build.n_samples)
    band = (build.bandpass.low_hz, build.bandpass.high_hz)
    psd_window = ("tukey", analyze.tukey_alpha)
    psd_labels = set(analyze.psd_labels)
    timings: dict[str, float] = {}
    rejected: dict[str, int] = {}

    # 1. Inputs: labels (+ truth) CSV, .npy files matched by id.
    started = time.monotonic()
    labels = read_csv(os.path.join(input_dir, build.labels_csv))
    truth = {}
    if build.truth_csv:
        truth = {row[build.id_column]: row for row in read_csv(os.path.join(input_dir, build.truth_csv))}
    files = {
        os.path.basename(p)[: -len(".npy")]: p
        for p in glob.glob(os.path.join(input_dir, build.npy_glob), recursive=True)
    }
    extra = [c for c in labels[0] if c not in (build.id_column, build.label_column)] if labels else []
    extra += [c for c in (next(iter(truth.values())) if truth else {}) if c not in extra and c != build.id_column]
    columns = BASE_COLUMNS + [c for c in extra if c not in BASE_COLUMNS and c != build.label_column]
    timings["read_inputs"] = time.monotonic() - started

    # 2. Per sample: load, validate, bandpass, split, write raw split shards; PSD sum over train noise.
    started = time.monotonic()
    raw_writers = {
        s: ShardWriter(os.path.join(out, "split", s), s, split_cfg.examples_per_shard, columns) for s in SPLITS
    }
    psd_sum = np.zeros((build.n_channels, build.n_samples // 2 + 1))
    psd_examples = 0
    for row in labels:
        uid = row[build.id_column]
        path = files.get(uid)
        if path is None:
            rejected[strain_lib.LABEL_WITHOUT_FILE] = rejected.get(strain_lib.LABEL_WITHOUT_FILE, 0) + 1
            continue
        try:
            label = strain_lib.parse_label(row[build.label_column])
            strain = strain_lib.validate_strain(np.load(path, allow_pickle=False), *shape)
        except (strain_lib.RejectedInput, ValueError, OSError) as error:
            reason = getattr(error, "reason", strain_lib.UNREADABLE_NPY)
            rejected[reason] = rejected.get(reason, 0) + 1
            continue
        bandpassed = signal.bandpass(
            strain, fs=build.sample_rate_hz, low_hz=band[0], high_hz=band[1], order=build.bandpass.order
        ).astype(np.float32)
        target_id = row[build.group_column].strip()
        split = assign_split(target_id, split_cfg.fractions, split_cfg.salt)
        raw_writers[split].write(
            raw_example(uid, target_id, label, bandpassed),
            {**truth.get(uid, {}), **row, "uid": uid, "target_id": target_id, "label": label},
        )
        if split == "train" and label in psd_labels:
            psd_sum += signal.periodogram_psd(bandpassed, build.sample_rate_hz, window=psd_window)[1]
            psd_examples += 1
    for writer in raw_writers.values():
        writer.close()
    timings["build_split"] = time.monotonic() - started
    if psd_examples == 0:
        raise SystemExit(f"no train example with a label in {sorted(psd_labels)}: cannot average the PSD")
    avg_psd = psd_sum / psd_examples

    # 3. Per-channel moments of the whitened, windowed train strain (mean of per-example means).
    started = time.monotonic()
    sum_mean = np.zeros(build.n_channels)
    sum_mean_sq = np.zeros(build.n_channels)
    n_train = 0
    for _, _, _, strain in read_raw(raw_writers["train"].paths, shape):
        windowed = signal.apply_tukey(signal.whiten(strain, avg_psd, build.sample_rate_hz, band), analyze.tukey_alpha)
        mean, mean_sq = signal.channel_moments(windowed)
        sum_mean += mean
        sum_mean_sq += mean_sq
        n_train += 1
    channel_mean, channel_std = signal.stats_from_moments(sum_mean / n_train, sum_mean_sq / n_train)
    np.savez(os.path.join(out, "plain_stats.npz"), avg_psd=avg_psd, channel_mean=channel_mean, channel_std=channel_std)
    timings["moments"] = time.monotonic() - started

    # 4. Normalize every split with the train statistics; FloatList strain.
    started = time.monotonic()
    norm_counts = {}
    for split in SPLITS:
        writer = ShardWriter(os.path.join(out, "norm", split), f"norm_{split}", split_cfg.examples_per_shard, columns)
        for uid, target_id, label, strain in read_raw(raw_writers[split].paths, shape):
            normalized = signal.normalize_strain(
                strain,
                avg_psd,
                channel_mean,
                channel_std,
                fs=build.sample_rate_hz,
                band=band,
                tukey_alpha=analyze.tukey_alpha,
            ).astype(np.float32)
            writer.write(
                norm_example(uid, target_id, label, normalized),
                {"uid": uid.decode(), "target_id": target_id.decode(), "label": label},
            )
        writer.close()
        norm_counts[split] = writer.count
    timings["normalize"] = time.monotonic() - started

    summary = {
        "seen": len(labels),
        "written": sum(norm_counts.values()),
        "rejected": rejected,
        "splits": {s: raw_writers[s].count for s in SPLITS},
        "psd_examples": psd_examples,
        "channel_mean": channel_mean.tolist(),
        "channel_std": channel_std.tolist(),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    with open(os.path.join(out, "plain_summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary
