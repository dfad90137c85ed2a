"""Build of the light-curve recipe: FITS files + TCE table -> raw ShardRecords (RecipeBuild subclass, ``tce``).

Flow (``BuildTce.examples``; the base class writes shards, rejections and counts):
    MatchFits -> KeyLightCurve (read the headers only, key the path by star) ┐
    ReadTceTable -> ParseTce (validate, key by star)                          ┼-> JoinByTarget (CoGroupByKey: one
                                                                              ┘   element per star: paths + TCEs)
    -> ProcessTarget (read and clean the star's files, detrend with every TCE masked, windows or views,
       target-level masks; side input FilesFound: files matched, with an id, a few ids, for the detail of a TCE
       whose star has no light curve; each file hashed from the bytes read: the examples' source_path,
       source_sha256 and source_rows columns, and the input set)
Only paths and TCE rows cross the shuffle; a star's light curves are read inside its ProcessTarget call and
dropped after it, so peak memory is one star's work, whatever the number of stars.
    -> WriteShards[raw] (bounded by examples per shard); every drop -> WriteRejected; counts -> WriteSummary

Units: times in days of the light curve's system (BKJD / BTJD), periods days, durations hours; stored arrays
are relative flux minus one, float32 bytes (``flux_window`` (n_bins,), or ``global_view`` / ``local_view``
(+ ``local_view_odd`` / ``local_view_even``)). Every example also carries ``tce_uid`` (bytes) for the per-TCE
statistics cap. Every file, TCE row, predicted transit and out-of-transit slot that does not become an example is
one row of ``OUT/rejected/build.csv``, so ``seen = written + rejected`` counts those decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.dataset import fs
from beam_pipelines.io.counting import Several, Tally
from beam_pipelines.io.inputs import CsvSource, MatchInputs, csv_source, read_csv_lines
from beam_pipelines.io.provenance import INPUTS, HashFiles, digest_of, digest_path
from beam_pipelines.io.records import ShardBatch, ShardRecord
from beam_pipelines.io.rejects import REJECTED, guarded, reject
from beam_pipelines.recipes.base import BuildOutputs, RecipeBuild
from transforms.config import ConfigError
from transforms.contract import RejectedInput
from transforms.csv_rows import decode_csv_line, parse_csv_line, row_key
from transforms.paths import check_input_glob
from transforms.provenance import sha256_bytes
from transforms.recipes.tce import diagnostics, fits_io, schema, target, tce_table
from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.encoding import encode_examples
from transforms.recipes.tce.recount import TCE_ROW

STAGE = "build"


class _KeyLightCurveFn(beam.DoFn):
    """One matched ``(path, is regular file)`` -> (star id, path) from the file's first header(s), or a
    rejection (not a regular file, unreadable, no id; a rejected regular file's digest is tagged ``INPUTS``)."""

    def __init__(self, cfg: TceConfig, input_dir: str = ""):
        self._cfg = cfg
        self._input_dir = input_dir

    def process(self, entry: tuple[str, bool]):
        path, regular = entry
        yield from guarded(STAGE, path, self._key_one(path, regular))

    def _key_one(self, path: str, regular: bool):
        if not regular or not fs.is_regular_file(path):
            yield reject(STAGE, path, schema.NOT_A_REGULAR_FILE, "matched tce.fits_glob but is not a regular file")
            return
        try:
            with fs.open_read(path) as handle:
                target_id = fits_io.read_target_id(handle.read, path, self._cfg)
        except RejectedInput as error:
            yield reject(STAGE, path, error.reason, error.detail)
        except OSError as error:
            yield reject(STAGE, path, schema.UNREADABLE_FITS, f"cannot read file: {error}")
        else:
            yield target_id, path
            return
        digest = digest_path(self._input_dir, path)  # never read whole by the build: hashed for the input set
        if digest is not None:
            yield beam.pvalue.TaggedOutput(INPUTS, digest)


def read_curves(paths, cfg: TceConfig, bytes_read, curves_read, input_dir: str = ""):
    """(cleaned LightCurves, rejections, FileDigests) of one star's FITS ``paths``; each file is hashed from the
    bytes read, and its curve carries its source (path relative to ``input_dir``) and digest."""
    curves, rejected, digests = [], [], []
    for path in sorted(paths):
        try:
            data = fs.read_bytes(path)
            bytes_read.inc(len(data))
            digest = digest_of(input_dir, path, sha256_bytes(data), len(data))
            digests.append(digest)
            curve = fits_io.read_light_curve(data, path, cfg)
            curves.append(replace(curve, source=digest.path, sha256=digest.sha256))
            curves_read.inc()
        except RejectedInput as error:
            rejected.append(reject(STAGE, path, error.reason, error.detail))
        except OSError as error:
            rejected.append(reject(STAGE, path, schema.UNREADABLE_FITS, f"cannot read file: {error}"))
    return curves, rejected, digests


class _ParseTceFn(beam.DoFn):
    """One TCE-table line -> (star id, Tce), or a rejection (malformed row, bad period, bad parameters)."""

    def __init__(self, header: tuple[str, ...], cfg: TceConfig):
        self._header = header
        self._cfg = cfg

    def process(self, line: bytes | str):
        key = row_key(TCE_ROW, line)
        yield from guarded(STAGE, key, self._parse(line, key))

    def _parse(self, line: bytes | str, key: str):
        try:
            tce = tce_table.parse_tce(parse_csv_line(decode_csv_line(line), self._header), self._cfg)
        except RejectedInput as error:
            yield reject(STAGE, key, error.reason, error.detail)
            return
        yield tce.target_id, tce


class _FilesFoundFn(beam.CombineFn):
    """(kind, value) items -> ``diagnostics.FilesFound`` (files matched, with an id, distinct ids, a few ids)."""

    def create_accumulator(self):
        return diagnostics.FilesFound()

    def add_input(self, accumulator, item):
        return diagnostics.add_found(accumulator, *item)

    def merge_accumulators(self, accumulators):
        return diagnostics.merge_found(accumulators)

    def extract_output(self, accumulator):
        return accumulator


class _ProcessTargetFn(beam.DoFn):
    """One star with all its light curves and TCEs -> one ShardBatch of its examples (none when it has none),
    plus a rejection per drop. One element per star, not per example: the steps that follow (shard writer,
    counts, progress) then cost per star, and the writer sees the same records in the same order."""

    def __init__(self, cfg: TceConfig, glob: str, input_dir: str = ""):
        self._cfg = cfg
        self._glob = glob
        self._input_dir = input_dir
        self._written = Metrics.counter(STAGE, "written")
        self._targets = Metrics.counter(STAGE, "targets")
        self._bytes = Metrics.counter(STAGE, "bytes_read")
        self._read = Metrics.counter(STAGE, "light_curves_read")

    def process(self, element, found):
        target_id, grouped = element
        self._targets.inc()
        yield from guarded(STAGE, f"target:{target_id}", self._process(target_id, grouped, found))

    def _process(self, target_id, grouped, found):
        curves, rejected, digests = read_curves(grouped["paths"], self._cfg, self._bytes, self._read, self._input_dir)
        yield from rejected
        for digest in digests:
            yield beam.pvalue.TaggedOutput(INPUTS, digest)
        missing = None
        if not curves:
            own = [r.value.reason for r in rejected]
            missing = diagnostics.no_light_curve_detail(target_id, self._cfg, self._glob, found, own)
        examples, drops = target.process_target(target_id, curves, list(grouped["tces"]), self._cfg, missing)
        del curves
        encoded, not_finite = encode_examples(examples)
        for drop in drops + not_finite:
            yield reject(STAGE, drop.what, drop.reason, drop.detail)
        if encoded:
            self._written.inc(len(encoded))
            yield ShardBatch(
                tuple(
                    ShardRecord(
                        example.uid,
                        serialized,
                        {**example.row, **example.sources, "target_id": example.target_id, "label": example.label},
                    )
                    for example, serialized in encoded
                )
            )


@dataclass(frozen=True)
class TcePlan:
    """The build's inputs as checked on the driver: the TCE table and the data-table columns."""

    tces: CsvSource
    columns: tuple[str, ...]


class BuildTce(RecipeBuild):
    """FITS light curves + TCE table -> ShardRecords of windows or views, rejections and what was seen."""

    PROVENANCE_COLUMNS = schema.PROVENANCE_COLUMNS

    @classmethod
    def plan(cls, config: Any, input_dir: str) -> TcePlan:
        """Reads the TCE table's header and checks the configured columns; raises ConfigError naming the key."""
        cfg: TceConfig = config.section
        check_input_glob(cfg.fits_glob, "tce.fits_glob")
        source = csv_source(input_dir, cfg.tce_csv, "tce.tce_csv")
        for key, column in cfg.columns.model_dump().items():
            if column not in source.header:
                raise ConfigError(
                    f"config key 'tce.columns.{key}': column '{column}' not in {source.path} {source.header}"
                )
        return TcePlan(source, tuple(target.data_table_columns(cfg, source.header)))

    @classmethod
    def table_columns(cls, plan: TcePlan) -> list[str]:
        return list(plan.columns)

    def examples(self, pipeline) -> BuildOutputs:
        cfg: TceConfig = self._config.section
        plan: TcePlan = self._plan
        glob = fs.join(self._input_dir, cfg.fits_glob)
        matched = pipeline | "MatchFits" >> MatchInputs(STAGE, glob)
        paths = matched.entries
        keyed = paths | "KeyLightCurve" >> beam.ParDo(_KeyLightCurveFn(cfg, self._input_dir)).with_outputs(
            REJECTED, INPUTS, main="paths"
        )
        lines = pipeline | "ReadTceTable" >> read_csv_lines(plan.tces.path)
        tces = lines | "ParseTce" >> beam.ParDo(_ParseTceFn(plan.tces.header, cfg)).with_outputs(REJECTED, main="tces")
        found = (
            (
                paths | "FoundMatched" >> beam.Map(lambda _: (diagnostics.MATCHED, "")),
                keyed.paths | "FoundKeyed" >> beam.Map(lambda _: (diagnostics.KEYED, "")),
                keyed.paths
                | "FoundIds" >> beam.Keys()
                | "DistinctIds" >> beam.Distinct()
                | "FoundTargets" >> beam.Map(lambda target_id: (diagnostics.TARGET, target_id)),
                matched[REJECTED] | "FoundUnlisted" >> beam.Map(lambda _: (diagnostics.UNLISTED, "")),
            )
            | "AllFound" >> beam.Flatten()
            | "FilesFound" >> beam.CombineGlobally(_FilesFoundFn())
        )
        process = _ProcessTargetFn(cfg, glob, self._input_dir)
        targets = (
            {"paths": keyed.paths, "tces": tces.tces}
            | "JoinByTarget" >> beam.CoGroupByKey()
            | "ProcessTarget"
            >> beam.ParDo(process, found=beam.pvalue.AsSingleton(found)).with_outputs(REJECTED, INPUTS, main="records")
        )
        inputs = (
            keyed[INPUTS],
            targets[INPUTS],
            pipeline | "HashTceTable" >> HashFiles(self._input_dir, [plan.tces.path]),
        ) | "AllInputs" >> beam.Flatten()
        rejected = (
            matched[REJECTED],
            keyed[REJECTED],
            tces[REJECTED],
            targets[REJECTED],
        ) | "AllRejected" >> beam.Flatten()
        # Every file, TCE row, transit and out-of-transit slot is one decision: written or rejected.
        # Only a count of each star's written examples and the uid / path of each rejection cross the flatten
        # (the records would be held by the runner).
        seen = (
            targets.records | "SeenWritten" >> beam.Map(lambda batch: Several(len(batch.records))),
            rejected | "SeenRejected" >> beam.Map(lambda rejection: rejection.uid_or_path),
        ) | "AllSeen" >> beam.Flatten()
        extra = (
            paths | "FilePairs" >> Tally("files_matched"),
            lines | "TceRowPairs" >> Tally("tce_rows"),
        )
        return BuildOutputs(targets.records, rejected, seen, extra, inputs)

    @classmethod
    def summary_extras(cls, config: Any, counts: Any) -> dict[str, Any]:
        return {"files_matched": counts["files_matched"], "tce_rows": counts["tce_rows"], "mode": config.section.mode}
