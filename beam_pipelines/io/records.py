"""What a stage hands the shard writer (``sink.WriteShards``) and what the shard readers give back: one example
with its data-table row (``ShardRecord``), or several as one element (``ShardBatch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


class ShardRecord(NamedTuple):
    """One example on its way to a shard: its serialized tf.Example and its data-table row."""

    uid: str
    example: bytes
    row: dict[str, Any]


class ShardBatch(NamedTuple):
    """Several ShardRecords as one element (e.g. all examples of one star): ``WriteShards`` writes them in order,
    exactly as if each had been its own element, and counts (``counting.weight``) see ``len(records)``. One
    element per batch instead of one per example spares every step that follows its per-element overhead."""

    records: tuple[ShardRecord, ...]


def records_of(element: ShardRecord | ShardBatch) -> Sequence[ShardRecord]:
    """The ShardRecords an element of a records collection carries: a batch's records, or the record itself."""
    return element.records if isinstance(element, ShardBatch) else (element,)
