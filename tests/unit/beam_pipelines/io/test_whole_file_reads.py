"""Whole-file reads (beam_pipelines.io.readers.ReadWholeFiles): every record and every data line, once, on the
in-memory runner and with several worker threads (where Beam's splittable sources lost records)."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.io.readers import ReadWholeFiles, data_lines, read_table_lines
from transforms.tfrecord import write_record


def _write_shards(folder, n_files: int, per_file: int) -> list[bytes]:
    records = []
    for f in range(n_files):
        with open(folder / f"part_shard_{f:04d}.tfrecord", "wb") as handle:
            for i in range(per_file):
                record = f"file{f}-record{i}".encode() * (1 + i % 7)
                write_record(handle, record)
                records.append(record)
    return records


@pytest.mark.parametrize(
    "options",
    [[], ["--direct_running_mode=multi_threading", "--direct_num_workers=4"]],
    ids=["in_memory", "threads"],
)
def test_every_record_of_every_file_once(tmp_path, options):
    records = _write_shards(tmp_path, n_files=6, per_file=500)
    with TestPipeline(runner=FnApiRunner(), options=PipelineOptions(options)) as p:
        read = p | ReadWholeFiles(str(tmp_path / "part_shard_*.tfrecord"))
        assert_that(read, equal_to(records))
        assert_that(read | beam.combiners.Count.Globally(), equal_to([len(records)]), label="Count")


def test_data_lines_split_like_beams_text_source(tmp_path):
    path = tmp_path / "table.csv"
    path.write_bytes(b"\xef\xbb\xbfuid,label\r\na,1\r\nb,0\nc,\xff1\n")
    assert data_lines(str(path)) == [b"a,1", b"b,0", b"c,\xff1"]
    path.write_bytes(b"uid,label\na,1\nb,0")  # no newline after the last line
    assert read_table_lines(str(path)) == ["a,1", "b,0"]
    path.write_bytes(b"uid,label\n")
    assert data_lines(str(path)) == []
    with TestPipeline(runner=FnApiRunner()) as p:
        lines = p | ReadWholeFiles(str(path).replace("table", "tabl*"), read_table_lines)
        assert_that(lines, equal_to([]))
