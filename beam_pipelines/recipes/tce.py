"""Build stage for light curves: FITS files + TCE table -> raw TFRecord shards + data tables (recipe ``tce``).

Flow (one composite PTransform, ``BuildTce``):
    MatchFits -> ReadLightCurve (read, clean, key by star)      ┐
    ReadTceTable -> ParseTce (validate, key by star)            ┼-> JoinByTarget (CoGroupByKey: one element per
                                                                ┘   star with all its files and TCEs)
    -> ProcessTarget (detrend with every TCE masked, windows or views, target-level masks)
    -> WriteShards[raw] (bounded by examples per shard); every drop -> WriteRejected; counts -> WriteSummary

Units: times in days of the light curve's system (BKJD / BTJD), periods days, durations hours; stored arrays
are relative flux minus one, float32 bytes (``flux_window`` (n_bins,), or ``global_view`` / ``local_view``
(+ ``local_view_odd`` / ``local_view_even``)). Every example also carries ``tce_uid`` (bytes) for the per-TCE
statistics cap. Every file, TCE row, predicted transit and out-of-transit slot that does not become an example is
one row of ``OUT/rejected/build.csv``, so ``seen = written + rejected`` counts those decisions.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics

from beam_pipelines import fs, manifest
from beam_pipelines.options import make_pipeline_options
from beam_pipelines.recipes.g2net import CsvSource, parse_csv_line, read_csv_header, read_summary
from beam_pipelines.rejects import REJECTED, WriteRejected, reject
from beam_pipelines.shards import ShardRecord, WriteJson, WriteShards
from transforms.config import ConfigError, DatasetConfig
from transforms.recipes.tce.config import TceConfig
from transforms.contract import decode_example, encode_example
from transforms.recipes.tce import lightcurve as lc

_LOG = logging.getLogger(__name__)
STAGE = "build"
SUMMARY_FILE = "_summary.json"
TCE_UID = "tce_uid"


def encode_tce_example(example: lc.TceExample) -> bytes:
    """The raw tf.Example: uid / target_id / label, float32-bytes arrays, and ``tce_uid`` (bytes)."""
    proto = decode_example(encode_example(example.uid, example.target_id, example.label, example.arrays))
    proto.features.feature[TCE_UID].bytes_list.value.append(example.tce_uid.encode("utf-8"))
    return proto.SerializeToString(deterministic=True)  # sorted map keys: same bytes on every worker


class _ReadLightCurveFn(beam.DoFn):
    """One FITS path -> (star id, cleaned LightCurve), or a rejection (unreadable, missing columns, ...)."""

    def __init__(self, cfg: TceConfig):
        self._cfg = cfg
        self._bytes = Metrics.counter(STAGE, "bytes_read")
        self._read = Metrics.counter(STAGE, "light_curves_read")

    def process(self, path: str):
        try:
            data = fs.read_bytes(path)
            self._bytes.inc(len(data))
            curve = lc.read_light_curve(data, path, self._cfg)
        except lc.RejectedInput as error:
            yield reject(STAGE, path, error.reason, error.detail)
            return
        except OSError as error:
            yield reject(STAGE, path, lc.UNREADABLE_FITS, f"cannot read file: {error}")
            return
        self._read.inc()
        yield curve.target_id, curve


class _ParseTceFn(beam.DoFn):
    """One TCE-table line -> (star id, Tce), or a rejection (malformed row, bad period, bad parameters)."""

    def __init__(self, header: tuple[str, ...], cfg: TceConfig):
        self._header = header
        self._cfg = cfg

    def process(self, line: str):
        try:
            tce = lc.parse_tce(parse_csv_line(line, self._header), self._cfg)
        except lc.RejectedInput as error:
            yield reject(STAGE, f"tce_csv:{line[:80]}", error.reason, error.detail)
            return
        yield tce.target_id, tce


class _ProcessTargetFn(beam.DoFn):
    """One star with all its light curves and TCEs -> ShardRecords, plus a rejection per drop."""

    def __init__(self, cfg: TceConfig):
        self._cfg = cfg
        self._written = Metrics.counter(STAGE, "written")
        self._targets = Metrics.counter(STAGE, "targets")

    def process(self, element):
        target_id, grouped = element
        self._targets.inc()
        examples, drops = lc.process_target(target_id, list(grouped["curves"]), list(grouped["tces"]), self._cfg)
        for drop in drops:
            yield reject(STAGE, drop.what, drop.reason, drop.detail)
        for example in examples:
            self._written.inc()
            row = {**example.row, "target_id": example.target_id, "label": example.label}
            yield ShardRecord(example.uid, encode_tce_example(example), row)


class BuildTce(beam.PTransform):
    """FITS light curves + TCE table -> raw shards, data tables, rejected CSV and a summary, under ``tmp``."""

    def __init__(
        self, input_dir: str, cfg: TceConfig, tces: CsvSource, tmp: str, extra_columns, examples_per_shard: int
    ):
        super().__init__()
        self._input_dir = input_dir
        self._cfg = cfg
        self._tces = tces
        self._tmp = tmp
        self._extra_columns = list(extra_columns)
        self._per_shard = examples_per_shard

    def expand(self, pipeline):
        cfg = self._cfg
        paths = (
            pipeline
            | "MatchFits" >> fileio.MatchFiles(fs.join(self._input_dir, cfg.fits_glob))
            | "Paths" >> beam.Map(lambda meta: meta.path)
        )
        curves = paths | "ReadLightCurve" >> beam.ParDo(_ReadLightCurveFn(cfg)).with_outputs(REJECTED, main="curves")
        lines = pipeline | "ReadTceTable" >> beam.io.ReadFromText(self._tces.path, skip_header_lines=1)
        tces = lines | "ParseTce" >> beam.ParDo(_ParseTceFn(self._tces.header, cfg)).with_outputs(REJECTED, main="tces")
        targets = (
            {"curves": curves.curves, "tces": tces.tces}
            | "JoinByTarget" >> beam.CoGroupByKey()
            | "ProcessTarget" >> beam.ParDo(_ProcessTargetFn(cfg)).with_outputs(REJECTED, main="records")
        )
        rejected = (curves[REJECTED], tces[REJECTED], targets[REJECTED]) | "AllRejected" >> beam.Flatten()
        shards = targets.records | "WriteShards[raw]" >> WriteShards(
            fs.join(self._tmp, "tfrecords"), "raw", self._per_shard, self._extra_columns, STAGE
        )
        rejected | "WriteRejected" >> WriteRejected(fs.join(self._tmp, "rejected", "build.csv"))
        pairs = (
            paths | "FilePairs" >> beam.Map(lambda _: ("files_matched", 1)),
            lines | "TceRowPairs" >> beam.Map(lambda _: ("tce_rows", 1)),
            targets.records | "WrittenPairs" >> beam.FlatMap(lambda _: [("written", 1), ("seen", 1)]),
            rejected
            | "RejectedPairs" >> beam.FlatMap(lambda r: [("rejected", 1), (f"rejected/{r.reason}", 1), ("seen", 1)]),
            shards | "ShardPairs" >> beam.Map(lambda _: ("num_shards", 1)),
        )
        pairs | "FlattenSummary" >> beam.Flatten() | "WriteSummary" >> WriteJson(fs.join(self._tmp, SUMMARY_FILE))
        return shards


def plan_build(cfg: TceConfig, input_dir: str) -> tuple[CsvSource, list[str]]:
    """Reads the TCE table's header and checks the configured columns; raises ConfigError naming the key."""
    relative = cfg.tce_csv
    path = relative if "://" in relative or relative.startswith("/") else fs.join(input_dir, relative)
    if not fs.exists(path):
        raise ConfigError(f"config key 'tce.tce_csv': file {path} does not exist")
    source = CsvSource(path, read_csv_header(path))
    for key, column in cfg.columns.model_dump().items():
        if column not in source.header:
            raise ConfigError(f"config key 'tce.columns.{key}': column '{column}' not in {path} {source.header}")
    return source, lc.data_table_columns(cfg, source.header)


def run_build_tce(
    config: DatasetConfig,
    input_dir: str,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Runs the light-curve build stage into ``out`` and returns the updated manifest."""
    if config.tce is None:
        raise ConfigError(f"recipe '{config.recipe}' has no 'tce' section")
    if not fs.exists(input_dir):
        raise ConfigError(f"--input {input_dir} does not exist")
    cfg = config.tce
    tces, columns = plan_build(cfg, input_dir)
    run = manifest.begin_stage(out, STAGE, overwrite)
    _LOG.info("build (tce, mode %s): %s -> %s (TCE table %s)", cfg.mode, input_dir, out, tces.path)
    started = time.monotonic()
    with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        _ = pipeline | "BuildTce" >> BuildTce(input_dir, cfg, tces, run.tmp, columns, config.build.examples_per_shard)
    counts = fs.read_text(run.tmp_path(SUMMARY_FILE))
    summary = read_summary(counts)
    summary.pop("label_rows", None)
    summary.update(
        tce_rows=json.loads(counts).get("tce_rows", 0),
        mode=cfg.mode,
        input_dir=input_dir,
        shard_dir="tfrecords",
        seconds=round(time.monotonic() - started, 2),
    )
    _LOG.info("build: written=%d rejected=%s", summary["written"], summary["rejected_by_reason"])
    return manifest.finish_stage(run, summary, config=config.model_dump(mode="json"))
