"""Build stage for G2Net-layout strain: ``.npy`` files + labels CSV -> raw TFRecord shards + data tables.

Flow (one composite PTransform, ``BuildG2Net``):
    MatchNpy -> KeyById ┐
    ReadLabels -> Parse ┼-> JoinById (CoGroupByKey; also breaks fusion so reads spread over workers)
    ReadTruth  -> Parse ┘      -> ResolveJoin (file/label checks) -> Preprocess (read, validate, bandpass)
                               -> WriteShards[raw]; every failure -> WriteRejected; counts -> WriteSummary
Each sample id ends as exactly one written example or one rejection, so seen = written + rejected.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics

from beam_pipelines import fs, manifest
from beam_pipelines.options import make_pipeline_options
from beam_pipelines.rejects import REJECTED, WriteRejected, reject
from beam_pipelines.shards import ShardRecord, WriteJson, WriteShards, counts_under
from transforms.config import BuildConfig, ConfigError, DatasetConfig
from transforms.contract import STRAIN, encode_example
from transforms.recipes.g2net import strain as strain_lib

_LOG = logging.getLogger(__name__)
STAGE = "build"
SUMMARY_FILE = "_summary.json"
SEEN = "seen"


@dataclass(frozen=True)
class CsvSource:
    """A CSV input: its path and header (read on the driver so bad keys fail before any work)."""

    path: str
    header: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """A sample whose file and label were matched: what the preprocessing step needs."""

    uid: str
    path: str
    target_id: str
    label: int
    row: dict[str, Any]


def read_csv_header(path: str) -> tuple[str, ...]:
    with fs.open_read(path) as handle:
        first = handle.readline().decode("utf-8").strip()
    return tuple(next(csv.reader([first]))) if first else ()


def sample_id(path: str) -> str:
    """G2Net ids are the file names: ``train/0/0/0/000a5b6e5c.npy`` -> ``000a5b6e5c``."""
    name = fs.basename(path)
    return name[: -len(".npy")] if name.endswith(".npy") else name


def parse_csv_line(line: str, header: tuple[str, ...]) -> dict[str, str]:
    """One CSV line -> a dict keyed by header; raises RejectedInput(MALFORMED_ROW) on a wrong field count."""
    fields = next(csv.reader([line]), [])
    if len(fields) != len(header):
        raise strain_lib.RejectedInput(
            strain_lib.MALFORMED_ROW,
            f"expected {len(header)} fields {header}, got {len(fields)}: {line[:200]!r}",
        )
    return dict(zip(header, fields, strict=True))


def resolve_join(uid: str, paths: list[str], label_rows: list[dict[str, str]], cfg: BuildConfig) -> Candidate:
    """Checks one sample id's matched files and label rows; raises RejectedInput with the reason otherwise."""
    if not paths:
        raise strain_lib.RejectedInput(strain_lib.LABEL_WITHOUT_FILE, "labels CSV lists this id but no .npy exists")
    if not label_rows:
        raise strain_lib.RejectedInput(strain_lib.FILE_WITHOUT_LABEL, f"no row in the labels CSV for {paths[0]}")
    if len(paths) > 1 or len(label_rows) > 1:
        raise strain_lib.RejectedInput(
            strain_lib.DUPLICATE_ID,
            f"id appears in {len(paths)} files {sorted(paths)} and {len(label_rows)} label rows",
        )
    row = label_rows[0]
    label = strain_lib.parse_label(row[cfg.label_column])
    target_id = row[cfg.group_column].strip()
    if not target_id:
        raise strain_lib.RejectedInput(strain_lib.MISSING_GROUP, f"empty group column '{cfg.group_column}'")
    return Candidate(uid=uid, path=paths[0], target_id=target_id, label=label, row=row)


class _ParseCsvFn(beam.DoFn):
    def __init__(self, header: tuple[str, ...], id_column: str, what: str):
        self._header = header
        self._id_column = id_column
        self._what = what

    def process(self, line: str):
        try:
            row = parse_csv_line(line, self._header)
        except strain_lib.RejectedInput as error:
            yield beam.pvalue.TaggedOutput(SEEN, line)
            yield reject(STAGE, f"{self._what}:{line[:80]}", error.reason, error.detail)
        else:
            yield row[self._id_column].strip(), row


class _ResolveJoinFn(beam.DoFn):
    def __init__(self, cfg: BuildConfig):
        self._cfg = cfg

    def process(self, element):
        uid, grouped = element
        paths, label_rows, truth_rows = (
            list(grouped["files"]),
            list(grouped["labels"]),
            list(grouped["truth"]),
        )
        if paths or label_rows:  # a truth row without sample is auxiliary data, not an input of this stage
            yield from self._resolve(uid, paths, label_rows, truth_rows)

    def _resolve(self, uid, paths, label_rows, truth_rows):
        yield beam.pvalue.TaggedOutput(SEEN, uid)
        try:
            candidate = resolve_join(uid, paths, label_rows, self._cfg)
        except strain_lib.RejectedInput as error:
            yield reject(STAGE, ";".join(sorted(paths)) or uid, error.reason, error.detail)
            return
        truth = truth_rows[0] if len(truth_rows) == 1 else {}
        yield Candidate(**{**candidate.__dict__, "row": {**truth, **candidate.row}})


class _PreprocessFn(beam.DoFn):
    """Reads a batch of ``.npy`` files, validates each, bandpasses the valid ones together, packs examples."""

    def __init__(self, cfg: BuildConfig):
        self._cfg = cfg
        self._written = Metrics.counter(STAGE, "written")
        self._bytes = Metrics.counter(STAGE, "bytes_read")

    def process(self, batch: list[Candidate]):
        readable, datas = [], []
        for candidate in batch:
            try:
                datas.append(fs.read_bytes(candidate.path))
                readable.append(candidate)
            except OSError as error:
                yield reject(STAGE, candidate.path, strain_lib.UNREADABLE_NPY, f"cannot read file: {error}")
        self._bytes.inc(sum(len(d) for d in datas))
        results = strain_lib.preprocess_for_build(datas, self._cfg)
        for candidate, result in zip(readable, results, strict=True):
            if isinstance(result, strain_lib.RejectedInput):
                yield reject(STAGE, candidate.path, result.reason, result.detail)
                continue
            self._written.inc()
            example = encode_example(candidate.uid, candidate.target_id, candidate.label, {STRAIN: result})
            row = {**candidate.row, "target_id": candidate.target_id, "label": candidate.label}
            yield ShardRecord(candidate.uid, example, row)


def _summary_pairs(seen, written, rejected, shards, files):
    return (
        seen | "SeenPairs" >> beam.Map(lambda _: ("seen", 1)),
        files | "FilePairs" >> beam.Map(lambda _: ("files_matched", 1)),
        written | "WrittenPairs" >> beam.Map(lambda _: ("written", 1)),
        rejected | "RejectedPairs" >> beam.FlatMap(lambda r: [("rejected", 1), (f"rejected/{r.reason}", 1)]),
        shards | "ShardPairs" >> beam.Map(lambda s: ("num_shards", 1)),
    ) | "FlattenSummary" >> beam.Flatten()


class BuildG2Net(beam.PTransform):
    """Raw G2Net-layout input folder -> raw shards, data tables, rejected CSV and a summary, under ``tmp``."""

    def __init__(
        self,
        input_dir: str,
        cfg: BuildConfig,
        labels: CsvSource,
        truth: CsvSource | None,
        tmp: str,
        extra_columns,
    ):
        super().__init__()
        self._input_dir = input_dir
        self._cfg = cfg
        self._labels = labels
        self._truth = truth
        self._tmp = tmp
        self._extra_columns = list(extra_columns)

    def expand(self, pipeline):
        cfg = self._cfg
        files = (
            pipeline
            | "MatchNpy" >> fileio.MatchFiles(fs.join(self._input_dir, cfg.npy_glob))
            | "KeyById" >> beam.Map(lambda meta: (sample_id(meta.path), meta.path))
        )
        labels = (
            pipeline
            | "ReadLabels" >> beam.io.ReadFromText(self._labels.path, skip_header_lines=1)
            | "ParseLabels"
            >> beam.ParDo(_ParseCsvFn(self._labels.header, cfg.id_column, "labels")).with_outputs(
                REJECTED, SEEN, main="rows"
            )
        )
        if self._truth is not None:
            truth = (
                pipeline
                | "ReadTruth" >> beam.io.ReadFromText(self._truth.path, skip_header_lines=1)
                | "ParseTruth"
                >> beam.ParDo(_ParseCsvFn(self._truth.header, cfg.id_column, "truth")).with_outputs(
                    REJECTED, SEEN, main="rows"
                )
            )
            truth_rows = truth.rows
            side_rejected, side_seen = [truth[REJECTED]], [truth[SEEN]]
        else:
            truth_rows = pipeline | "NoTruth" >> beam.Create([])
            side_rejected, side_seen = [], []
        joined = (
            {"files": files, "labels": labels.rows, "truth": truth_rows}
            | "JoinById" >> beam.CoGroupByKey()
            | "ResolveJoin" >> beam.ParDo(_ResolveJoinFn(cfg)).with_outputs(REJECTED, SEEN, main="candidates")
        )
        processed = (
            joined.candidates
            | "BatchCandidates" >> beam.BatchElements(min_batch_size=8, max_batch_size=64)
            | "Preprocess" >> beam.ParDo(_PreprocessFn(cfg)).with_outputs(REJECTED, main="records")
        )
        rejected = (
            labels[REJECTED],
            joined[REJECTED],
            processed[REJECTED],
            *side_rejected,
        ) | "AllRejected" >> beam.Flatten()
        shards = processed.records | "WriteShards[raw]" >> WriteShards(
            fs.join(self._tmp, "tfrecords"), "raw", cfg.examples_per_shard, self._extra_columns, STAGE
        )
        rejected | "WriteRejected" >> WriteRejected(fs.join(self._tmp, "rejected", "build.csv"))
        seen = (labels[SEEN], joined[SEEN], *side_seen) | "AllSeen" >> beam.Flatten()
        _summary_pairs(seen, processed.records, rejected, shards, files) | "WriteSummary" >> WriteJson(
            fs.join(self._tmp, SUMMARY_FILE)
        )
        return shards


def _csv_source(input_dir: str, relative: str, key: str) -> CsvSource:
    path = relative if "://" in relative or relative.startswith("/") else fs.join(input_dir, relative)
    if not fs.exists(path):
        raise ConfigError(f"config key '{key}': file {path} does not exist")
    return CsvSource(path, read_csv_header(path))


def plan_build(cfg: BuildConfig, input_dir: str) -> tuple[CsvSource, CsvSource | None, list[str]]:
    """Reads the CSV headers and checks the configured columns exist; raises ConfigError naming the key."""
    labels = _csv_source(input_dir, cfg.labels_csv, "build.labels_csv")
    for key in ("id_column", "label_column", "group_column"):
        column = getattr(cfg, key)
        if column not in labels.header:
            raise ConfigError(f"config key 'build.{key}': column '{column}' not in {labels.path} {labels.header}")
    truth = _csv_source(input_dir, cfg.truth_csv, "build.truth_csv") if cfg.truth_csv else None
    if truth is not None and cfg.id_column not in truth.header:
        raise ConfigError(f"config key 'build.id_column': column '{cfg.id_column}' not in {truth.path}")
    skip = {cfg.id_column, cfg.label_column}
    extra = [c for c in labels.header if c not in skip]
    if truth is not None:
        extra += [c for c in truth.header if c not in skip and c not in extra]
    return labels, truth, extra


def run_build(
    config: DatasetConfig,
    input_dir: str,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Runs the build stage into ``out`` and returns the updated manifest."""
    if not fs.exists(input_dir):
        raise ConfigError(f"--input {input_dir} does not exist")
    labels, truth, extra = plan_build(config.build, input_dir)
    run = manifest.begin_stage(out, STAGE, overwrite)
    _LOG.info("build: %s -> %s (labels %s, truth %s)", input_dir, out, labels.path, truth.path if truth else None)
    started = time.monotonic()
    with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        _ = pipeline | "BuildG2Net" >> BuildG2Net(input_dir, config.build, labels, truth, run.tmp, extra)
    summary = read_summary(fs.read_text(run.tmp_path(SUMMARY_FILE)))
    summary.update(input_dir=input_dir, shard_dir="tfrecords", seconds=round(time.monotonic() - started, 2))
    _LOG.info(
        "build: seen=%d written=%d rejected=%s",
        summary["seen"],
        summary["written"],
        summary["rejected_by_reason"],
    )
    return manifest.finish_stage(run, summary, config=config.model_dump(mode="json"))


def read_summary(text: str) -> dict[str, Any]:
    """The summary JSON of the pipeline -> the manifest entry's counts."""
    counts = json.loads(text)
    by_reason = counts_under(counts, "rejected/")
    return {
        "seen": counts.get("seen", 0),
        "written": counts.get("written", 0),
        "rejected": counts.get("rejected", 0),
        "rejected_by_reason": by_reason,
        "num_shards": counts.get("num_shards", 0),
        "files_matched": counts.get("files_matched", 0),
        "label_rows": counts.get("label_rows", 0),
    }
