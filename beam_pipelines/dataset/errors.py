"""The dataset folder's refusals: a stage that cannot run on OUT, and a folder another run holds."""

from __future__ import annotations

from transforms.errors import SigforgeError


class StageError(SigforgeError, RuntimeError):
    """A stage cannot run on this output folder (missing input, existing output without --overwrite)."""

    code = "stage"


class DatasetLocked(StageError):
    """Another run holds the dataset folder's lock."""

    code = "locked"
