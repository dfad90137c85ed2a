"""Dedicated exceptions of the trainer; every message names the path, split, shard or feature at fault."""

from __future__ import annotations


class DatasetError(ValueError):
    """The dataset folder cannot be trained on (missing or empty split, bad metadata, bad shard)."""


class FeatureSpecError(DatasetError):
    """The transformed feature spec does not provide what the model config asks for."""


class CorruptShardError(DatasetError):
    """A TFRecord shard cannot be read through (truncated, bad checksum, not a TFRecord file)."""


class RunError(ValueError):
    """A run folder given to the evaluator is missing an artifact or is inconsistent."""
