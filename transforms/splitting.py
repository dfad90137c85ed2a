"""Deterministic, leakage-free split assignment (no Beam): sha256 of the group key into fraction buckets.

Like TFX ExampleGen's hash buckets, and unlike Python's ``hash()`` (salted per process), sha256 gives the same
split for a target on every runner, worker and machine. All examples of a target share its split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

SPLITS = ("train", "val", "test")
_BUCKETS = 10_000


def bucket_of(key: str, salt: str = "", buckets: int = _BUCKETS) -> int:
    """The bucket in ``[0, buckets)`` of ``key``: the first 8 bytes of sha256(salt + ":" + key), big-endian."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def assign_split(target_id: str, fractions: Mapping[str, float], salt: str = "") -> str:
    """The split of ``target_id``: cumulative fractions, in SPLITS order, over ``_BUCKETS`` hash buckets."""
    bucket = bucket_of(target_id, salt)
    upper = 0.0
    for split in SPLITS:
        upper += fractions.get(split, 0.0)
        if bucket < round(upper * _BUCKETS):
            return split
    return SPLITS[-1] if fractions.get(SPLITS[-1], 0.0) > 0 else max(fractions, key=fractions.get)
