"""The dataset contract (docs/ARCHITECTURE.md section 3): what every stage, the trainer and users rely on.

One module holds it so that ``beam_pipelines`` and ``model`` agree without importing each other:

- feature names: every tf.Example carries ``uid`` (bytes), ``target_id`` (bytes, the group key) and ``label``
  (int64); large float arrays are one bytes feature of raw little-endian float32 (``strain``, ``flux_window``);
- split names, stage names and what each stage publishes, relative to the dataset folder ``OUT``;
- shard / data-table / manifest naming (``{prefix}_shard_NNNN-TOTAL.tfrecord``, ``data_tbl_NNNN-TOTAL.csv``);
- the one rejection type, ``RejectedInput`` (a stable ``reason`` key and a ``detail``), and the dead-letter row
  ``Rejection`` written to ``OUT/rejected/<stage>.csv``;
- the sample id of an input file.

Storing arrays as bytes: building a FloatList from 12k Python floats costs milliseconds per example,
``ndarray.tobytes()`` microseconds.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

# ---- features ---------------------------------------------------------------------------------------------------
UID, TARGET_ID, LABEL, STRAIN = "uid", "target_id", "label", "strain"
RAW_DTYPE = np.dtype("<f4")

# ---- splits, stages and the dataset folder ----------------------------------------------------------------------
SPLITS = ("train", "val", "test")
STAGES = ("build", "split", "analyze", "normalize", "filter")
# What each stage publishes, relative to OUT (folders end in "/").
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "build": ("tfrecords/", "rejected/build.csv", "provenance/"),
    "split": ("split/",),
    "analyze": ("stats/",),
    "normalize": ("norm/",),
    "filter": ("filtered/", "rejected/filter.csv"),
}
MANIFEST = "manifest.json"
RAW_DIR, SPLIT_DIR, STATS_DIR, NORM_DIR, FILTERED_DIR, REJECTED_DIR = (
    "tfrecords",
    "split",
    "stats",
    "norm",
    "filtered",
    "rejected",
)
RAW_PREFIX = "raw"
# Cross-validation (``split.mode: kfold``, docs/splits.md): the split stage writes OUT/split/fold_NN/ (shard prefix
# fold_NN) and OUT/split/folds.json; analyze OUT/stats/cv_NN/ (as OUT/stats/) per iteration; normalize
# OUT/norm/cv_NN/{train,val,test}/ (as OUT/norm/{split}/) per iteration.
SPLIT_MODES = ("hash", "kfold", "temporal")
FOLDS_FILE = "folds.json"


def fold_name(index: int) -> str:
    """0-based fold ``index`` -> its folder (and shard prefix) under ``OUT/split/``: ``fold_03``."""
    return f"fold_{index:02d}"


def cv_name(iteration: int) -> str:
    """0-based cross-validation ``iteration`` -> its folder under ``OUT/stats/`` and ``OUT/norm/``: ``cv_03``."""
    return f"cv_{iteration:02d}"


# The dataset report (``sigforge report``) describes every stage: any stage replaced with --overwrite makes it stale.
REPORT_DIR = "report"
PROVENANCE_DIR = "provenance"  # the build's record of its input set (transforms/provenance.py)
BASE_COLUMNS = ("uid", "target_id", "label", "shard")  # first columns of every data table
SHARD_NUMBER = re.compile(r"_(\d+)-(\d+)\.tfrecord(?:\.gz)?$")


def split_prefix(split: str) -> str:
    """Shard prefix of a split folder: ``train`` -> ``train_shard_*``."""
    return split


def norm_prefix(split: str) -> str:
    """Shard prefix of normalized (and filtered) shards: ``train`` -> ``norm_train_shard_*``."""
    return f"norm_{split}"


def shard_name(prefix: str, index: int, total: int) -> str:
    """0-based ``index`` of ``total`` -> ``{prefix}_shard_NNNN-TOTAL.tfrecord`` (1-based, seed naming)."""
    return f"{prefix}_shard_{index + 1:04d}-{total:04d}.tfrecord"


def table_name(index: int, total: int) -> str:
    return f"data_tbl_{index + 1:04d}-{total:04d}.csv"


def shard_pattern(prefix: str) -> str:
    """Glob of a shard set's file names (no folder)."""
    return f"{prefix}_shard_*-*.tfrecord"


def shard_patterns(prefix: str) -> tuple[str, str]:
    """Globs of a shard set's file names, plain and gzip-compressed (``.tfrecord.gz``, which the trainer reads)."""
    return shard_pattern(prefix), shard_pattern(prefix) + ".gz"


TABLE_PATTERN = "data_tbl_*-*.csv"


def table_name_for_shard(shard_name_: str) -> str:
    """``train_shard_0002-0005.tfrecord`` -> ``data_tbl_0002-0005.csv``."""
    numbers = posixpath.basename(shard_name_).rsplit("_shard_", 1)[1].split(".", 1)[0]
    return f"data_tbl_{numbers}.csv"


def sample_id(path: str, suffix: str = ".npy") -> str:
    """The sample id of an input file is its name without ``suffix``: ``train/0/0/0/000a5b6e5c.npy`` ->
    ``000a5b6e5c`` (the G2Net convention)."""
    name = posixpath.basename(path.rstrip("/"))
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


# ---- rejections -------------------------------------------------------------------------------------------------
MALFORMED_ROW = "malformed_csv_row"


class RejectedInput(ValueError):
    """An input that cannot become an example; ``reason`` is a stable key, ``detail`` explains it."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Rejection(NamedTuple):
    """One row of ``OUT/rejected/<stage>.csv``: what was rejected, by which stage, why."""

    uid_or_path: str
    stage: str
    reason: str
    detail: str


REJECTION_COLUMNS = Rejection._fields


# ---- tf.Example encoding ----------------------------------------------------------------------------------------
def encode_example(
    uid: str, target_id: str, label: int, arrays: dict[str, np.ndarray], strings: dict[str, str] | None = None
) -> bytes:
    """Serializes one example; each array becomes a bytes feature of its little-endian float32 values, each of
    ``strings`` a bytes feature of its UTF-8 text (e.g. ``tce_uid``)."""
    from tensorflow.core.example import example_pb2  # imported on use: config and CLI paths stay TF-free

    example = example_pb2.Example()
    feature = example.features.feature
    feature[UID].bytes_list.value.append(uid.encode("utf-8"))
    feature[TARGET_ID].bytes_list.value.append(target_id.encode("utf-8"))
    feature[LABEL].int64_list.value.append(int(label))
    for name, array in arrays.items():
        feature[name].bytes_list.value.append(np.ascontiguousarray(array, dtype=RAW_DTYPE).tobytes())
    for name, text in (strings or {}).items():
        feature[name].bytes_list.value.append(text.encode("utf-8"))
    # deterministic: map entries sorted by key; otherwise protobuf's map order varies between processes, and the
    # same example would give different shard bytes on different workers or runners.
    return example.SerializeToString(deterministic=True)


class ExampleEncoder:
    """``encode_example`` for many examples with the same array and string feature names: one proto whose values
    are replaced for each example, then serialized (a few times faster than building a proto per example; the
    same bytes, since the proto then holds the same message).

    ``encode`` needs exactly these names in ``arrays`` / ``strings``. Names must be distinct and not ``uid`` /
    ``target_id`` / ``label`` (ValueError: ``encode_example`` would give such a feature two values)."""

    def __init__(self, array_names: Sequence[str], string_names: Sequence[str] = ()):
        from tensorflow.core.example import example_pb2  # imported on use: config and CLI paths stay TF-free

        names = [UID, TARGET_ID, LABEL, *array_names, *string_names]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names repeat: {names}")
        self._example = example_pb2.Example()
        feature = self._example.features.feature
        self._uid, self._target_id = feature[UID].bytes_list.value, feature[TARGET_ID].bytes_list.value
        self._label = feature[LABEL].int64_list.value
        self._arrays = [(name, feature[name].bytes_list.value) for name in array_names]
        self._strings = [(name, feature[name].bytes_list.value) for name in string_names]
        for values in (self._uid, self._target_id, *(v for _, v in self._arrays), *(v for _, v in self._strings)):
            values.append(b"")
        self._label.append(0)

    def encode(
        self,
        uid: str,
        target_id: str,
        label: int,
        arrays: Mapping[str, np.ndarray],
        strings: Mapping[str, str] | None = None,
    ) -> bytes:
        """The bytes ``encode_example(uid, target_id, label, arrays, strings)`` gives."""
        strings = strings or {}
        if len(arrays) != len(self._arrays) or len(strings) != len(self._strings):
            raise KeyError(f"features {sorted(arrays)} + {sorted(strings)} are not this encoder's")
        self._uid[0] = uid.encode("utf-8")
        self._target_id[0] = target_id.encode("utf-8")
        self._label[0] = int(label)
        for name, values in self._arrays:
            values[0] = np.ascontiguousarray(arrays[name], dtype=RAW_DTYPE).tobytes()
        for name, values in self._strings:
            values[0] = strings[name].encode("utf-8")
        return self._example.SerializeToString(deterministic=True)


def decode_example(serialized: bytes):
    """The ``tf.train.Example`` proto of a serialized example."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    example.ParseFromString(serialized)
    return example


def example_keys(serialized: bytes) -> tuple[str, str, int]:
    """(uid, target_id, label) of a serialized example."""
    feature = decode_example(serialized).features.feature
    return (
        feature[UID].bytes_list.value[0].decode("utf-8"),
        feature[TARGET_ID].bytes_list.value[0].decode("utf-8"),
        int(feature[LABEL].int64_list.value[0]),
    )


def bytes_feature(serialized: bytes, name: str) -> str | None:
    """The first value of the bytes feature ``name`` as text, or None when the example lacks it."""
    feature = decode_example(serialized).features.feature
    values = feature[name].bytes_list.value if name in feature else []
    return values[0].decode("utf-8") if values else None


def decode_array(example, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 array stored as raw bytes under ``name``, reshaped to ``shape``."""
    data = example.features.feature[name].bytes_list.value[0]
    return np.frombuffer(data, dtype=RAW_DTYPE).reshape(shape)
