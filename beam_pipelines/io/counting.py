"""Stage counts: one typed helper to count elements into a stage's summary and to read the summary back.

In the pipeline, ``Tally`` turns elements into ``(key, 1)`` pairs and ``WriteSummary`` sums every pair into one
``{key: n}`` JSON file; after the pipeline, ``Counts`` reads it. These counts, not Beam metrics, feed the
manifest: they are exact on every runner (metrics may be approximate or absent on some).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.io.records import ShardBatch

SUMMARY_FILE = "_summary.json"


class Several(NamedTuple):
    """One element that stands for ``n`` elements of a counted collection (e.g. the uids of one star's written
    examples, counted without sending each through its own step): ``Tally`` and the progress heartbeat count it
    as ``n``."""

    n: int


def weight(element: Any) -> int:
    """How many elements ``element`` counts as: a ``Several`` its ``n``, a ``ShardBatch`` its records, else 1."""
    if isinstance(element, Several):
        return element.n
    if isinstance(element, ShardBatch):
        return len(element.records)
    return 1


class Tally(beam.PTransform):
    """Elements -> ``(key, n)`` pairs with ``n = weight(element)`` (1 for a plain element): one per element under a
    fixed ``key``, or one per key ``keys(element)`` returns (e.g. ``lambda r: ["rejected", f"rejected/{r.reason}"]``).
    """

    def __init__(self, key: str | Callable[[Any], Iterable[str]]):
        super().__init__()
        self._key = key

    def expand(self, elements):
        if isinstance(self._key, str):
            key = self._key
            return elements | beam.Map(lambda element: (key, weight(element)))
        keys = self._key
        return elements | beam.FlatMap(lambda element: [(k, weight(element)) for k in keys(element)])


class WriteSummary(beam.PTransform):
    """Writes the per-key sums of ``(key, number)`` pairs as one JSON file at ``path``."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pairs):
        path = self._path
        return (
            pairs
            | "SumPerKey" >> beam.CombinePerKey(sum)
            | "ToDict" >> beam.combiners.ToDict()
            | "Write" >> beam.Map(lambda d: fs.write_text(path, json.dumps(d, sort_keys=True)))
        )


class Counts(Mapping[str, int]):
    """A stage summary read back: ``counts["seen"]`` (0 when absent) and ``counts.under("rejected/")``."""

    def __init__(self, values: Mapping[str, int]):
        self._values = dict(values)

    @classmethod
    def read(cls, path: str) -> Counts:
        return cls(json.loads(fs.read_text(path)))

    def __getitem__(self, key: str) -> int:
        return self._values.get(key, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def under(self, prefix: str) -> dict[str, int]:
        """The entries below ``prefix`` (e.g. ``"rejected/"``), keyed by the rest, sorted."""
        return {key[len(prefix) :]: value for key, value in sorted(self._values.items()) if key.startswith(prefix)}
