"""Unit tests of the integrity pieces: npy header checks without allocation, the internal_error guard, per-row
CSV decoding, non-regular file listing, the robust outlier guard and the stage output checks."""

from __future__ import annotations

import io
import os
import tracemalloc

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.inputs import SEEN, UNDECODABLE_ROW, ParseCsvFn
from beam_pipelines.io.rejects import INTERNAL_ERROR, REJECTED, guarded, reject
from beam_pipelines.stages.analyze import check_stats
from beam_pipelines.stages.filter import check_filtered
from beam_pipelines.stages.normalize import check_normalized
from beam_pipelines.stages.outliers import BINS_PER_DECADE, ScaleOutliers, median_bin
from beam_pipelines.stages.split import check_split
from tests.support.corpus_g2net import huge_header, npy_bytes
from transforms.recipes.g2net import strain as s

GOOD = np.random.default_rng(0).normal(0, 7e-22, (3, 4096))


def test_huge_header_is_refused_without_allocating():
    tracemalloc.start()
    with pytest.raises(s.RejectedInput) as info:
        s.read_npy(io.BytesIO(huge_header()), 3, 4096)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert info.value.reason == s.WRONG_SHAPE and "(3, 1000000000000)" in info.value.detail
    assert peak < 1_000_000


def test_read_npy_reads_exactly_the_declared_bytes():
    np.testing.assert_array_equal(s.read_npy(io.BytesIO(npy_bytes(GOOD)), 3, 4096), GOOD)
    np.testing.assert_array_equal(s.read_npy(io.BytesIO(npy_bytes(np.asfortranarray(GOOD))), 3, 4096), GOOD)
    with pytest.raises(s.RejectedInput, match="more data"):
        s.read_npy(io.BytesIO(npy_bytes(GOOD) + b"x"), 3, 4096)


def test_bandpass_result_checked_again_after_the_float32_cast():
    """float64 strain that passes every check but overflows float32 after the filter is not written."""
    big = GOOD / GOOD.std() * 1e40
    (result,) = s.preprocess_arrays([big], 3, 4096, 2048.0, (20.0, 500.0), 8, (1e-30, 1e300), 0.25)
    assert isinstance(result, s.RejectedInput) and result.reason == s.NON_FINITE_AFTER_CAST


def test_label_outside_the_declared_set():
    assert s.parse_label("1", (0, 1)) == 1
    for text in ("2", "-1"):
        with pytest.raises(s.RejectedInput) as info:
            s.parse_label(text, (0, 1))
        assert info.value.reason == s.LABEL_NOT_DECLARED


def test_guard_turns_an_unexpected_exception_into_one_rejection():
    def work():
        yield "first"
        raise KeyError("surprise")

    out = list(guarded("build", "x.npy", work()))
    assert out[0] == "first"
    assert out[1].tag == REJECTED and out[1].value.reason == INTERNAL_ERROR and "KeyError" in out[1].value.detail


def test_guard_passes_known_rejections_through():
    out = list(guarded("build", "x.npy", iter([reject("build", "x.npy", s.NON_FINITE, "nan")])))
    assert [o.value.reason for o in out] == [s.NON_FINITE]


def test_csv_rows_are_decoded_one_by_one():
    header = ("id", "target")
    lines = [b"a,1", b"b\xff,0", b"c,1,extra"]
    with TestPipeline(runner=FnApiRunner()) as p:
        out = (
            p
            | beam.Create(lines)
            | beam.ParDo(ParseCsvFn("build", header, "id", "labels")).with_outputs(REJECTED, SEEN, main="rows")
        )
        assert_that(out.rows | beam.Map(lambda kv: kv[0]), equal_to(["a"]), label="Rows")
        assert_that(
            out[REJECTED] | beam.Map(lambda r: r.reason),
            equal_to([UNDECODABLE_ROW, s.MALFORMED_ROW]),
            label="Rejected",
        )
        assert_that(out[SEEN] | beam.combiners.Count.Globally(), equal_to([2]), label="Seen")


def test_match_entries_lists_what_beam_match_skips(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    np.save(folder / "good.npy", GOOD)
    os.mkfifo(folder / "fifo.npy")
    (folder / "dir.npy").mkdir()
    os.symlink(tmp_path / "missing", folder / "dangling.npy")
    entries = dict(fs.match_entries(str(tmp_path / "train" / "**" / "*.npy")))
    assert entries == {
        str(folder / "good.npy"): True,
        str(folder / "fifo.npy"): False,
        str(folder / "dir.npy"): False,
        str(folder / "dangling.npy"): False,
    }
    assert fs.glob(str(tmp_path / "train" / "**" / "*.npy")) != sorted(entries)  # Beam's match misses two


def test_median_bin_and_outlier_guard():
    assert median_bin([(1, 3), (5, 1), (-2, 1)]) == 1
    assert median_bin([]) is None
    from transforms.contract import encode_example

    scales = {f"u{i}": 1e-22 * (1 + i / 100) for i in range(20)}
    scales["far"] = 1e-22 * 10 ** (2.0 + 2 / BINS_PER_DECADE)
    scales["near"] = 1e-22 * 10**1.9
    records = {encode_example(uid, uid, 0, {}): scale for uid, scale in scales.items()}
    with TestPipeline(runner=FnApiRunner()) as p:
        outliers = p | beam.Create(sorted(records)) | ScaleOutliers(records.get)
        assert_that(outliers, equal_to(["far"]))


def _refusal(check, summary) -> StageError:
    with pytest.raises(StageError) as info:
        check(summary)
    return info.value


def test_stage_checks_raise_before_publishing():
    check_stats({"finite": True, "channel_std": [1.0, 2.0], "view_std": {"a": 1.0}})
    assert _refusal(check_stats, {"finite": False}).code == "non_finite"
    zero_std = _refusal(check_stats, {"finite": True, "channel_std": [1.0, 0.0]})
    assert zero_std.code == "degenerate" and "'channel_std'" in str(zero_std)
    whole = {"read": 10, "handed": 8, "analyzed": 8}
    counted = {"finite": True, "train_examples": 10, "stats_outliers_excluded": 2, "max_examples_per_group": None}
    check_stats({**counted, "analyzed_examples": {"psd": whole, "moments": whole}})
    guard = _refusal(check_stats, {**counted, "guard_read": 11, "analyzed_examples": {"psd": whole}})
    assert guard.code == "count_mismatch"  # the outlier guard read more than the split holds
    for name, seen in [
        ("psd", {**whole, "read": 9}),  # a pass read fewer than the split holds
        ("moments", {**whole, "analyzed": 7}),  # the analyzers saw fewer than the pass handed them
        ("psd", {**whole, "handed": 9, "analyzed": 9}),  # more than the guard kept
    ]:
        error = _refusal(check_stats, {**counted, "analyzed_examples": {name: seen}})
        assert error.code == "count_mismatch" and f"'{name}'" in str(error)
    capped = {**counted, "max_examples_per_group": 4}
    check_stats({**capped, "analyzed_examples": {"views": {**whole, "handed": 5, "analyzed": 5}}})
    over_cap = _refusal(check_stats, {**capped, "analyzed_examples": {"views": {**whole, "handed": 9, "analyzed": 9}}})
    assert over_cap.code == "count_mismatch" and "'views'" in str(over_cap)
    ok = {"seen": 4, "examples": 4, "non_finite": 0, "collapsed": 0}
    check_normalized({"splits": {"train": ok, "val": ok}})
    lost = _refusal(check_normalized, {"splits": {"train": {**ok, "in_split": 4}, "val": {**ok, "in_split": 5}}})
    assert lost.code == "count_mismatch" and "split val" in str(lost)
    check_split({"in_build": 5, "seen": 5, "written": 5})
    assert _refusal(check_split, {"in_build": 5, "seen": 4, "written": 4}).code == "count_mismatch"
    assert _refusal(check_split, {"in_build": 5, "seen": 5, "written": 4}).code == "count_mismatch"
    check_filtered({"splits": {"train": {"seen": 4, "in_norm": 4}, "val": {"seen": 2, "in_norm": None}}})
    lost = _refusal(check_filtered, {"splits": {"train": {"seen": 3, "in_norm": 4}}})
    assert lost.code == "count_mismatch" and "split train" in str(lost)
    dropped = _refusal(check_normalized, {"splits": {"train": ok, "val": {**ok, "examples": 3}}})
    assert dropped.code == "count_mismatch" and "split val" in str(dropped)
    assert _refusal(check_normalized, {"splits": {"train": {**ok, "non_finite": 1}}}).code == "non_finite"
    assert _refusal(check_normalized, {"splits": {"train": {**ok, "collapsed": 3}}}).code == "collapsed"
