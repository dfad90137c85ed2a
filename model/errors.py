"""Dedicated exceptions of the trainer; every message names the path, split, shard or feature at fault."""

from __future__ import annotations

from transforms.errors import SigforgeError


class DatasetError(SigforgeError, ValueError):
    """The dataset folder cannot be trained on (missing or empty split, bad metadata, bad shard)."""

    code = "dataset"


class FeatureSpecError(DatasetError):
    """The transformed feature spec does not provide what the model config asks for."""

    code = "feature_spec"


class CorruptShardError(DatasetError):
    """A TFRecord shard cannot be read through (truncated, bad checksum, not a TFRecord file)."""

    code = "corrupt_shard"


class RunError(SigforgeError, ValueError):
    """A run folder given to the evaluator is missing an artifact or is inconsistent."""

    code = "run"
