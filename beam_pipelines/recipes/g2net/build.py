"""Build of the G2Net recipe: ``.npy`` strain files + labels CSV -> raw ShardRecords (RecipeBuild subclass).

Flow (``BuildG2Net.examples``):
    MatchNpy (every entry, regular or not) -> KeyById ┐
    ReadLabels (ReadCsvRows)                          ┼-> JoinById (CoGroupByKey; spreads reads over workers)
    ReadTruth  (ReadCsvRows)                          ┘   -> ResolveJoin (file/label checks)
    -> Preprocess (read, validate, bandpass; each file hashed from the bytes read: its example's source_path and
       source_sha256 columns, and the input set)
The base class writes the raw shards, rejections and counts. Each sample id ends as exactly one written example
or one rejection, so seen = written + rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.dataset import fs
from beam_pipelines.io.counting import Tally
from beam_pipelines.io.inputs import SEEN, CsvSource, MatchInputs, ReadCsvRows, csv_source, parse_csv_line
from beam_pipelines.io.provenance import INPUTS, HashFiles, digest_of, digest_path
from beam_pipelines.io.records import ShardRecord
from beam_pipelines.io.rejects import REJECTED, guarded, reject
from beam_pipelines.recipes.base import BuildOutputs, RecipeBuild
from transforms import parallel
from transforms.config import ConfigError
from transforms.contract import STRAIN, encode_example, sample_id
from transforms.csv_rows import iter_records
from transforms.paths import check_input_glob
from transforms.provenance import SOURCE_COLUMNS, SOURCE_PATH, SOURCE_SHA256, FileDigest, HashingReader
from transforms.recipes.g2net import strain as strain_lib
from transforms.recipes.g2net.config import G2NetConfig

STAGE = "build"


@dataclass(frozen=True)
class Candidate:
    """A sample whose file and label were matched: what the preprocessing step needs."""

    uid: str
    path: str
    target_id: str
    label: int
    row: dict[str, Any]


def resolve_join(
    uid: str,
    paths: list[str],
    label_rows: list[dict[str, str]],
    cfg: G2NetConfig,
    irregular: tuple[str, ...] = (),
    unlisted: tuple[str, ...] = (),
) -> Candidate:
    """Checks one sample id's matched files and label rows; raises RejectedInput with the reason otherwise.

    ``irregular`` are the matched paths that are not regular files (FIFO, folder, dangling symlink): never opened.
    ``unlisted`` are the folders below the glob that could not be listed (or followed): a label row without a file
    says so, since its file may lie there.
    """
    if irregular:
        raise strain_lib.RejectedInput(
            strain_lib.NOT_A_REGULAR_FILE, f"{sorted(irregular)} matched g2net.npy_glob but is not a regular file"
        )
    if not paths and unlisted:
        shown = ", ".join(sorted(unlisted)[:3]) + (" ..." if len(unlisted) > 3 else "")
        raise strain_lib.RejectedInput(
            strain_lib.LABEL_WITHOUT_FILE,
            f"labels CSV lists this id but no .npy was found; {len(unlisted)} folder(s) could not be listed, the file "
            f"may be there: {shown}",
        )
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
    label = strain_lib.parse_label(row[cfg.label_column], tuple(cfg.labels))
    target_id = row[cfg.group_column].strip()
    if not target_id:
        raise strain_lib.RejectedInput(strain_lib.MISSING_GROUP, f"empty group column '{cfg.group_column}'")
    return Candidate(uid=uid, path=paths[0], target_id=target_id, label=label, row=row)


def resolve_truth(truth_rows: list[dict[str, str]]) -> dict[str, str]:
    """The one truth-CSV row of a sample id (``{}`` when it has none); identical repeated rows are one row.
    Rows that differ leave the truth ambiguous: RejectedInput(DUPLICATE_TRUTH_ROW), never a silent pick or empty
    truth columns."""
    distinct = {tuple(sorted(row.items())) for row in truth_rows}
    if len(distinct) > 1:
        raise strain_lib.RejectedInput(
            strain_lib.DUPLICATE_TRUTH_ROW,
            f"{len(truth_rows)} rows of the truth CSV list this id, {len(distinct)} of them different",
        )
    return truth_rows[0] if truth_rows else {}


class _ResolveJoinFn(beam.DoFn):
    def __init__(self, cfg: G2NetConfig, input_dir: str = ""):
        self._cfg = cfg
        self._input_dir = input_dir

    def process(self, element, unlisted=()):
        uid, grouped = element
        entries, label_rows, truth_rows = (
            list(grouped["files"]),
            list(grouped["labels"]),
            list(grouped["truth"]),
        )
        if entries or label_rows:  # a truth row without sample is auxiliary data, not an input of this stage
            paths = [path for path, _ in entries]
            yield beam.pvalue.TaggedOutput(SEEN, uid)
            yield from guarded(
                STAGE, ";".join(sorted(paths)) or uid, self._resolve(uid, entries, label_rows, truth_rows, unlisted)
            )

    def _resolve(self, uid, entries, label_rows, truth_rows, unlisted):
        paths = [path for path, _ in entries]
        irregular = tuple(path for path, regular in entries if not regular)
        try:
            candidate = resolve_join(uid, paths, label_rows, self._cfg, irregular, tuple(unlisted))
            truth = resolve_truth(truth_rows)
        except strain_lib.RejectedInput as error:
            yield reject(STAGE, ";".join(sorted(paths)) or uid, error.reason, error.detail)
            for path, regular in entries:  # never read by the build: hashed here for the input set
                digest = digest_path(self._input_dir, path) if regular else None
                if digest is not None:
                    yield beam.pvalue.TaggedOutput(INPUTS, digest)
            return
        yield Candidate(**{**candidate.__dict__, "row": {**truth, **candidate.row}})


class _PreprocessFn(beam.DoFn):
    """Reads a batch of ``.npy`` files, validates each, bandpasses the valid ones together (on the process's
    numeric threads, ``build.numeric_threads``), packs examples. Each file is hashed from the bytes read
    (``HashingReader``): its FileDigest goes to the input set (``INPUTS``) and its example's data-table row."""

    def __init__(self, cfg: G2NetConfig, numeric_threads: int = 0, input_dir: str = ""):
        self._cfg = cfg
        self._input_dir = input_dir
        self._numeric_threads = numeric_threads
        self._threads = 1
        self._written = Metrics.counter(STAGE, "written")
        self._bytes = Metrics.counter(STAGE, "bytes_read")

    def setup(self):
        self._threads = parallel.thread_count(self._numeric_threads)  # the worker's cores, not the driver's

    def process(self, batch: list[Candidate]):
        read = [self._read(candidate) for candidate in batch]
        arrays = [array for array, _ in read]
        digests = [digest for _, digest in read]
        for digest in digests:
            if digest is not None:
                yield beam.pvalue.TaggedOutput(INPUTS, digest)
        try:
            results = strain_lib.preprocess_for_build(arrays, self._cfg, self._threads)
        except Exception:  # noqa: BLE001  (one sample broke the batch: redo each alone, so only it is rejected)
            for candidate, array, digest in zip(batch, arrays, digests, strict=True):
                yield from guarded(STAGE, candidate.path, self._pack(candidate, array, digest, single=True))
            return
        for candidate, result, digest in zip(batch, results, digests, strict=True):
            yield from guarded(STAGE, candidate.path, self._pack(candidate, result, digest, single=False))

    def _read(self, candidate: Candidate):
        """(the sample's array (header checked before any data is read) or its RejectedInput, the file's
        FileDigest or None when it could not be read)."""
        if not fs.is_regular_file(candidate.path):
            return strain_lib.RejectedInput(strain_lib.NOT_A_REGULAR_FILE, "not a regular file when opened"), None
        try:
            with fs.open_read(candidate.path) as handle:
                reader = HashingReader(handle)
                try:
                    array = strain_lib.read_npy(reader, self._cfg.n_channels, self._cfg.n_samples)
                except strain_lib.RejectedInput as error:
                    array = error
                digest = digest_of(self._input_dir, candidate.path, *reader.finish())
        except OSError as error:
            return strain_lib.RejectedInput(strain_lib.UNREADABLE_NPY, f"cannot read file: {error}"), None
        if not isinstance(array, strain_lib.RejectedInput):
            self._bytes.inc(array.nbytes)
        return array, digest

    def _pack(self, candidate: Candidate, result, digest: FileDigest | None, single: bool):
        if single:
            (result,) = strain_lib.preprocess_for_build([result], self._cfg)
        if isinstance(result, strain_lib.RejectedInput):
            yield reject(STAGE, candidate.path, result.reason, result.detail)
            return
        example = encode_example(candidate.uid, candidate.target_id, candidate.label, {STRAIN: result})
        row = {**candidate.row, "target_id": candidate.target_id, "label": candidate.label}
        row.update({SOURCE_PATH: digest.path, SOURCE_SHA256: digest.sha256})
        self._written.inc()
        yield ShardRecord(candidate.uid, example, row)


def check_psd_labels(labels: CsvSource, cfg: G2NetConfig) -> None:
    """A cheap look at the labels CSV (streamed, stops at the first match): some row must carry a label in
    ``g2net.psd_labels``, or the analyze stage could not form the noise PSD; ConfigError naming the key."""
    wanted = {str(label) for label in cfg.psd_labels}
    with fs.open_read(labels.path) as handle:
        records = iter_records(handle)
        next(records, None)  # the header
        for raw in records:
            try:
                row = parse_csv_line(raw.decode("utf-8"), labels.header)
                value = str(strain_lib.parse_label(row[cfg.label_column]))
            except (UnicodeDecodeError, strain_lib.RejectedInput):
                continue  # the build rejects that row with its reason
            if value in wanted:
                return
    raise ConfigError(
        f"config key 'g2net.psd_labels': no row of {labels.path} has a '{cfg.label_column}' in "
        f"{sorted(cfg.psd_labels)}, so the analyze stage could not form the noise PSD"
    )


@dataclass(frozen=True)
class G2NetPlan:
    """The build's inputs as checked on the driver: the labels CSV, the optional truth CSV, the table columns."""

    labels: CsvSource
    truth: CsvSource | None
    columns: tuple[str, ...]


class BuildG2Net(RecipeBuild):
    """Raw G2Net-layout input folder -> ShardRecords of bandpassed strain, rejections and what was seen."""

    PROVENANCE_COLUMNS = SOURCE_COLUMNS

    @classmethod
    def plan(cls, config: Any, input_dir: str) -> G2NetPlan:
        """Reads the CSV headers and checks the configured columns exist; raises ConfigError naming the key."""
        cfg: G2NetConfig = config.section
        check_input_glob(cfg.npy_glob, "g2net.npy_glob")
        labels = csv_source(input_dir, cfg.labels_csv, "g2net.labels_csv")
        for key in ("id_column", "label_column", "group_column"):
            column = getattr(cfg, key)
            if column not in labels.header:
                raise ConfigError(f"config key 'g2net.{key}': column '{column}' not in {labels.path} {labels.header}")
        check_psd_labels(labels, cfg)
        truth = csv_source(input_dir, cfg.truth_csv, "g2net.truth_csv") if cfg.truth_csv else None
        if truth is not None and cfg.id_column not in truth.header:
            raise ConfigError(f"config key 'g2net.id_column': column '{cfg.id_column}' not in {truth.path}")
        skip = {cfg.id_column, cfg.label_column}
        extra = [c for c in labels.header if c not in skip]
        if truth is not None:
            extra += [c for c in truth.header if c not in skip and c not in extra]
        for column in cls.PROVENANCE_COLUMNS:
            if column in extra:
                raise ConfigError(
                    f"config key 'g2net.labels_csv' / 'g2net.truth_csv': column '{column}' is reserved for the "
                    "data tables' provenance (the raw file of each example); rename it"
                )
        return G2NetPlan(labels, truth, tuple(extra))

    @classmethod
    def table_columns(cls, plan: G2NetPlan) -> list[str]:
        return list(plan.columns)

    def examples(self, pipeline) -> BuildOutputs:
        cfg: G2NetConfig = self._config.section
        plan: G2NetPlan = self._plan
        matched = pipeline | "MatchNpy" >> MatchInputs(STAGE, fs.join(self._input_dir, cfg.npy_glob))
        files = matched.entries | "KeyById" >> beam.Map(lambda entry: (sample_id(entry[0]), entry))
        unlisted = matched[REJECTED] | "UnlistedFolders" >> beam.Map(lambda rejection: rejection.uid_or_path)
        labels = pipeline | "ReadLabels" >> ReadCsvRows(STAGE, plan.labels, cfg.id_column, "labels")
        if plan.truth is not None:
            truth = pipeline | "ReadTruth" >> ReadCsvRows(STAGE, plan.truth, cfg.id_column, "truth")
            truth_rows = truth.rows
            side_rejected, side_seen = [truth[REJECTED]], [truth[SEEN]]
        else:
            truth_rows = pipeline | "NoTruth" >> beam.Create([])
            side_rejected, side_seen = [], []
        joined = (
            {"files": files, "labels": labels.rows, "truth": truth_rows}
            | "JoinById" >> beam.CoGroupByKey()
            | "ResolveJoin"
            >> beam.ParDo(_ResolveJoinFn(cfg, self._input_dir), unlisted=beam.pvalue.AsList(unlisted)).with_outputs(
                REJECTED, SEEN, INPUTS, main="candidates"
            )
        )
        processed = (
            joined.candidates
            | "BatchCandidates" >> beam.BatchElements(min_batch_size=8, max_batch_size=128)
            | "Preprocess"
            >> beam.ParDo(_PreprocessFn(cfg, self._config.build.numeric_threads, self._input_dir)).with_outputs(
                REJECTED, INPUTS, main="records"
            )
        )
        csvs = [plan.labels.path] + ([plan.truth.path] if plan.truth is not None else [])
        inputs = (
            joined[INPUTS],
            processed[INPUTS],
            pipeline | "HashCsvs" >> HashFiles(self._input_dir, csvs),
        ) | "AllInputs" >> beam.Flatten()
        rejected = (
            matched[REJECTED],
            labels[REJECTED],
            joined[REJECTED],
            processed[REJECTED],
            *side_rejected,
        ) | "AllRejected" >> beam.Flatten()
        seen = (matched[SEEN], labels[SEEN], joined[SEEN], *side_seen) | "AllSeen" >> beam.Flatten()
        files_matched = (matched.entries | "FilePairs" >> Tally("files_matched"),)
        return BuildOutputs(processed.records, rejected, seen, files_matched, inputs)

    @classmethod
    def summary_extras(cls, config: Any, counts: Any) -> dict[str, Any]:
        return {"files_matched": counts["files_matched"]}
