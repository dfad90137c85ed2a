"""tf.Example encoding for shards (ARCHITECTURE.md section 3 contract).

Every example carries ``uid`` (bytes), ``target_id`` (bytes) and ``label`` (int64). Large float arrays are
stored as one bytes feature of raw little-endian float32 (``strain``): building a FloatList from 12k Python
floats costs milliseconds per example, ``ndarray.tobytes()`` microseconds.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.example import example_pb2

UID, TARGET_ID, LABEL, STRAIN = "uid", "target_id", "label", "strain"
RAW_DTYPE = np.dtype("<f4")


def encode_example(uid: str, target_id: str, label: int, arrays: dict[str, np.ndarray]) -> bytes:
    """Serializes one example; each array becomes a bytes feature of its little-endian float32 values."""
    example = example_pb2.Example()
    feature = example.features.feature
    feature[UID].bytes_list.value.append(uid.encode("utf-8"))
    feature[TARGET_ID].bytes_list.value.append(target_id.encode("utf-8"))
    feature[LABEL].int64_list.value.append(int(label))
    for name, array in arrays.items():
        feature[name].bytes_list.value.append(np.ascontiguousarray(array, dtype=RAW_DTYPE).tobytes())
    # deterministic: map entries sorted by key; otherwise protobuf's map order varies between processes, and the
    # same example would give different shard bytes on different workers or runners.
    return example.SerializeToString(deterministic=True)


def decode_example(serialized: bytes) -> example_pb2.Example:
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


def decode_array(example: example_pb2.Example, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 array stored as raw bytes under ``name``, reshaped to ``shape``."""
    data = example.features.feature[name].bytes_list.value[0]
    return np.frombuffer(data, dtype=RAW_DTYPE).reshape(shape)
