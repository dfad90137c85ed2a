"""CSV inputs of a build (labels, truth, TCE tables): headers read on the driver, rows parsed per record.

Files are split into RFC 4180 records (``transforms.csv_rows.iter_records``: a quoted field may hold newlines),
kept as bytes and decoded one by one: a row that is not UTF-8 is rejected (``undecodable_csv_row``), a row with
the wrong field count or broken quoting is rejected (``malformed_csv_row``); neither fails the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.io.readers import ReadWholeFiles, data_lines
from beam_pipelines.io.rejects import REJECTED, guarded, reject
from transforms.config import ConfigError
from transforms.contract import RejectedInput
from transforms.csv_rows import UNDECODABLE_ROW as UNDECODABLE_ROW  # the pure parts live in transforms/ (the
from transforms.csv_rows import (  # audit's recount uses them)
    decode_csv_line,
    first_record,
    parse_csv_line,
    parse_header,
    row_key,
)
from transforms.paths import input_file

SEEN = "seen"


@dataclass(frozen=True)
class CsvSource:
    """A CSV input: its path and header (read on the driver so bad keys fail before any work)."""

    path: str
    header: tuple[str, ...]


def read_csv_header(path: str) -> tuple[str, ...]:
    with fs.open_read(path) as handle:
        raw = first_record(handle)
    try:
        return parse_header(raw)
    except UnicodeDecodeError as error:
        raise ConfigError(f"CSV {path}: the header line is not UTF-8 ({error})") from None


def read_csv_lines(path: str) -> beam.PTransform:
    """The data records of a CSV (RFC 4180, header skipped) as raw bytes, for ``ParseCsvFn`` to decode row by
    row; the file
    is read whole by one worker (``ReadWholeFiles``, as every stage reads its files: Beam's splittable TFRecord
    source lost records with the multi-threaded runner), and its path is taken literally (no glob)."""
    return ReadWholeFiles(path, data_lines, literal=True)


def csv_source(input_dir: str, relative: str, key: str) -> CsvSource:
    """The CSV at ``relative`` (to ``input_dir``, or absolute / ``gs://``; ``~`` and ``$VARS`` expanded:
    ``transforms.paths.input_file``); ConfigError naming ``key`` if absent."""
    path = input_file(input_dir, relative, key)
    if not fs.exists(path):
        raise ConfigError(f"config key '{key}': file {path} does not exist")
    return CsvSource(path, read_csv_header(path))


class ParseCsvFn(beam.DoFn):
    """One CSV line -> ``(id, row)``; a malformed line -> a rejection, tagged ``seen`` too (it was an input)."""

    def __init__(self, stage: str, header: tuple[str, ...], id_column: str, what: str):
        self._stage = stage
        self._header = header
        self._id_column = id_column
        self._what = what

    def process(self, line: bytes | str):
        key = row_key(self._what, line)
        yield from guarded(self._stage, key, self._parse(line, key))

    def _parse(self, line: bytes | str, key: str):
        try:
            row = parse_csv_line(decode_csv_line(line), self._header)
        except RejectedInput as error:
            yield beam.pvalue.TaggedOutput(SEEN, key.partition(":")[2])
            yield reject(self._stage, key, error.reason, error.detail)
        else:
            yield row[self._id_column].strip(), row


class ReadCsvRows(beam.PTransform):
    """A CSV input -> tagged outputs: ``rows`` (``(id, row)``), ``REJECTED`` (malformed or undecodable lines)
    and ``SEEN`` (those lines again, as inputs met). Applied to the pipeline."""

    def __init__(self, stage: str, source: CsvSource, id_column: str, what: str):
        super().__init__()
        self._stage = stage
        self._source = source
        self._id_column = id_column
        self._what = what

    def expand(self, pipeline):
        return (
            pipeline
            | "ReadLines" >> read_csv_lines(self._source.path)
            | "Parse"
            >> beam.ParDo(ParseCsvFn(self._stage, self._source.header, self._id_column, self._what)).with_outputs(
                REJECTED, SEEN, main="rows"
            )
        )


class _MatchFn(beam.DoFn):
    """A glob -> its ``(path, is_regular_file)`` entries; each folder that could not be listed or followed ->
    a rejection naming it, tagged ``seen`` too (an input met: it may hold inputs)."""

    def __init__(self, stage: str):
        self._stage = stage

    def process(self, pattern: str):
        entries, faults = fs.match_with_faults(pattern)
        for fault in faults:
            yield beam.pvalue.TaggedOutput(SEEN, fault.path)
            yield reject(self._stage, fault.path, fault.reason, fault.detail)
        yield from entries


class MatchInputs(beam.PTransform):
    """The input files matching ``pattern`` -> tagged outputs: ``entries`` (``(path, is_regular_file)``, see
    ``fs.match_with_faults``), ``REJECTED`` (a folder that could not be listed: ``unreadable_folder``; a
    symlinked folder not followed: ``symlink_loop``) and ``SEEN`` (those folders). Applied to the pipeline."""

    def __init__(self, stage: str, pattern: str):
        super().__init__()
        self._stage = stage
        self._pattern = pattern

    def expand(self, pipeline):
        return (
            pipeline
            | "Glob" >> beam.Create([self._pattern])
            | "Match" >> beam.ParDo(_MatchFn(self._stage)).with_outputs(REJECTED, SEEN, main="entries")
        )
