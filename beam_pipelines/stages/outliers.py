"""Robust guard of the analyze stage: train examples whose amplitude is an outlier are left out of the statistics.

The statistics are moments; one finite example x1e4 (inside the physical range the build accepts) would dominate
them and collapse every other normalized example to ~0. Before the tf.Transform analysis each train record's
scale (the recipe's ``example_scale``, e.g. the strain std) is binned on a log10 grid (``BINS_PER_DECADE``); the
median bin of the train split is found from the histogram (a deterministic combine, no sampling), and a record
more than ``max_decades`` from it is excluded from the statistics (counted and named in the manifest; it stays in
the dataset). Recipes without ``example_scale`` skip the guard. The guard is a branch of the first analysis
pass's pipeline (``analyze.run_analyze``) that yields only the excluded uids: no runner holds train records until
the histogram is known. That pass's statistics stand when the guard excludes nothing; otherwise the pass runs
again, and every pass drops the excluded uids with a plain filter.
"""

from __future__ import annotations

import math

import apache_beam as beam

from beam_pipelines.io.counting import Tally
from transforms.contract import example_keys

BINS_PER_DECADE = 20


def scale_bin(serialized: bytes, scale_fn) -> int | None:
    """The record's log10-scale bin, or None when it has no positive finite scale (never excluded)."""
    scale = scale_fn(serialized)
    if scale is None or not math.isfinite(scale) or scale <= 0:
        return None
    return round(math.log10(scale) * BINS_PER_DECADE)


def median_bin(histogram: list[tuple[int, int]]) -> int | None:
    """The lower median bin of a ``(bin, count)`` histogram; None when it is empty."""
    total = sum(n for _, n in histogram)
    if not total:
        return None
    seen = 0
    for bin_, n in sorted(histogram):
        seen += n
        if seen * 2 >= total:
            return bin_
    return None


class _OutlierFn(beam.DoFn):
    def __init__(self, max_bins: int):
        self._max_bins = max_bins

    def process(self, element, histogram):
        uid, bin_ = element
        center = median_bin(histogram)
        if bin_ is not None and center is not None and abs(bin_ - center) > self._max_bins:
            yield uid


class ScaleOutliers(beam.PTransform):
    """Serialized train records -> the uids of those more than ``max_decades`` from the median scale.

    Only ``(uid, bin)`` pairs wait for the histogram (the side input), never the records: memory stays flat in
    the number of train examples on runners that hold a side-input consumer's input until the side input is
    ready (the FnApiRunner does: a guard that filtered the records themselves held the whole train split)."""

    def __init__(self, scale_fn, max_decades: float = 2.0):
        super().__init__()
        self._scale_fn = scale_fn
        self._max_bins = int(round(max_decades * BINS_PER_DECADE))

    def expand(self, records):
        scale_fn = self._scale_fn
        keyed = records | "ScaleBin" >> beam.Map(lambda r: (example_keys(r)[0], scale_bin(r, scale_fn)))
        histogram = (
            keyed
            | "Bins" >> beam.FlatMap(lambda kv: [kv[1]] if kv[1] is not None else [])
            | "CountBins" >> beam.combiners.Count.PerElement()
        )
        return keyed | "Outliers" >> beam.ParDo(_OutlierFn(self._max_bins), beam.pvalue.AsList(histogram))


def outlier_tally(prefix: str = "") -> beam.PTransform:
    """Count pairs for the stage summary: ``stats_outliers`` and one ``stats_outlier/<uid>`` per excluded uid (each
    key after ``prefix``)."""
    return Tally(lambda uid: [f"{prefix}stats_outliers", f"{prefix}stats_outlier/{uid}"])
