"""Labelled raw G2Net files and the Beam PTransform that scores them with the matched filter.

``list_samples`` joins ``RAW/train/**/*.npy`` with ``training_labels.csv`` (and the injected SNR of
``injections.csv``) into ``RawSample`` records and ``Rejection`` rows; ``ScoreSamples`` maps a PCollection of
``RawSample`` to score rows (``SCORE_COLUMNS``) and rejections, one ``MatchedFilter`` per worker (built in
``DoFn.setup``); ``score_with_beam`` runs it locally for ``sigforge baseline matched-filter``
(``beam_pipelines.recipes.g2net.baseline``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import posixpath
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import apache_beam as beam
import numpy as np

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io import progress as progress_lib
from beam_pipelines.runtime.options import make_pipeline_options
from transforms.recipes.g2net import matched_filter as mf
from transforms.recipes.g2net import strain as strain_lib

_LOG = logging.getLogger(__name__)

SCORE_COLUMNS = ("id", "label", "score", "snr", "m1", "m2", "spin1z", "spin2z", "tc")
REJECTED_TAG = "rejected"


@dataclass(frozen=True)
class RawSample:
    """One labelled raw file: G2Net ``uid`` (the file stem), its ``path``, ``label`` 0/1 and injected ``snr``
    (NaN when unknown)."""

    uid: str
    path: str
    label: int
    snr: float


@dataclass(frozen=True)
class Rejection:
    uid: str
    path: str
    reason: str
    detail: str


def _read_csv_rows(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(fs.read_text(path))))


def list_samples(
    data_dir: str,
    labels_csv: str = "training_labels.csv",
    npy_glob: str = "train/**/*.npy",
    injections_csv: str | None = "injections.csv",
    id_column: str = "id",
    label_column: str = "target",
) -> tuple[list[RawSample], list[Rejection]]:
    """Joins the ``.npy`` files under ``data_dir`` with their labels (and injected SNRs when the truth table
    exists). Returns the samples (sorted by uid) and the rejected inputs. Raises StageError without a labels CSV
    or without any matched file."""
    labels_path = fs.join(data_dir, labels_csv)
    if not fs.exists(labels_path):
        raise StageError(f"labels CSV {labels_path} not found")
    label_rows = _read_csv_rows(labels_path)
    if label_rows and (id_column not in label_rows[0] or label_column not in label_rows[0]):
        raise StageError(f"{labels_path} must have columns {id_column!r} and {label_column!r}")
    snr_by_id: dict[str, float] = {}
    if injections_csv:
        truth_path = fs.join(data_dir, injections_csv)
        if fs.exists(truth_path):
            for row in _read_csv_rows(truth_path):
                text = (row.get("snr") or "").strip()
                try:
                    snr_by_id[row[id_column].strip()] = float(text) if text else math.nan
                except ValueError:
                    snr_by_id[row[id_column].strip()] = math.nan

    files: dict[str, list[str]] = {}
    for path in fs.glob(fs.join(data_dir, npy_glob)):
        files.setdefault(posixpath.basename(path)[: -len(".npy")], []).append(path)
    rejects: list[Rejection] = []
    labels: dict[str, int] = {}
    for row in label_rows:
        uid = (row.get(id_column) or "").strip()
        if uid in labels:
            rejects.append(Rejection(uid, "", strain_lib.DUPLICATE_ID, f"id {uid!r} appears twice in {labels_csv}"))
            continue
        try:
            label = strain_lib.parse_label(row.get(label_column, ""))
            if label not in (0, 1):
                raise strain_lib.RejectedInput(strain_lib.BAD_LABEL, f"label {label} is not 0 or 1")
        except strain_lib.RejectedInput as error:
            rejects.append(Rejection(uid, "", error.reason, error.detail))
            labels[uid] = -1
            continue
        labels[uid] = label
    samples = []
    for uid, paths in sorted(files.items()):
        if len(paths) > 1:
            rejects.append(Rejection(uid, ";".join(paths), strain_lib.DUPLICATE_ID, f"{len(paths)} files"))
        elif uid not in labels:
            rejects.append(Rejection(uid, paths[0], strain_lib.FILE_WITHOUT_LABEL, f"no row in {labels_csv}"))
        elif labels[uid] >= 0:
            samples.append(RawSample(uid, paths[0], labels[uid], snr_by_id.get(uid, math.nan)))
    for uid in sorted(set(labels) - set(files)):
        rejects.append(Rejection(uid, "", strain_lib.LABEL_WITHOUT_FILE, f"no {npy_glob} file named {uid}.npy"))
    if not samples:
        raise StageError(f"no labelled .npy file matched {fs.join(data_dir, npy_glob)}")
    return samples, rejects


def load_strain(sample: RawSample, cfg: mf.MatchedFilterConfig) -> np.ndarray:
    """The validated strain (n_det, n_samples) float64 of one file; raises ``transforms.contract.RejectedInput``."""
    strain = strain_lib.decode_npy(fs.read_bytes(sample.path), len(cfg.detectors), cfg.n_samples)
    return strain_lib.validate_strain(strain, len(cfg.detectors), cfg.n_samples)


class _ScoreFn(beam.DoFn):
    """RawSample -> score row (``SCORE_COLUMNS``); unreadable inputs to ``REJECTED_TAG`` as ``Rejection``."""

    def __init__(self, bank: mf.TemplateBank, psd: np.ndarray, cfg: mf.MatchedFilterConfig):
        self._bank, self._psd, self._cfg = bank, psd, cfg
        self._search = None

    def setup(self):
        self._search = mf.MatchedFilter(self._bank, self._psd, self._cfg)

    def process(self, sample: RawSample):
        try:
            score = self._search.score(load_strain(sample, self._cfg))
        except strain_lib.RejectedInput as error:
            _LOG.error("%s (%s): rejected: %s: %s", sample.uid, sample.path, error.reason, error.detail)
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, Rejection(sample.uid, sample.path, error.reason, error.detail))
            return
        yield {
            "id": sample.uid,
            "label": sample.label,
            "score": score.snr,
            "snr": sample.snr,
            "m1": score.m1,
            "m2": score.m2,
            "spin1z": score.spin1z,
            "spin2z": score.spin2z,
            "tc": score.tc,
        }


class ScoreSamples(beam.PTransform):
    """PCollection[RawSample] -> tagged outputs ``scored`` (dict rows, ``SCORE_COLUMNS``) and ``rejected``
    (``Rejection``). A reshuffle first spreads the samples over the workers."""

    def __init__(
        self,
        bank: mf.TemplateBank,
        psd: np.ndarray,
        cfg: mf.MatchedFilterConfig,
        progress: beam.PTransform | None = None,
    ):
        super().__init__()
        self._bank, self._psd, self._cfg = bank, psd, cfg
        self._progress = progress or progress_lib.PassThrough()

    def expand(self, samples):
        return (
            samples
            | "Spread" >> beam.Reshuffle()
            | "Progress" >> self._progress  # fused with the scoring: counts each sample as it is scored
            | "Score"
            >> beam.ParDo(_ScoreFn(self._bank, self._psd, self._cfg)).with_outputs(REJECTED_TAG, main="scored")
        )


def score_with_beam(
    samples: Sequence[RawSample],
    bank: mf.TemplateBank,
    psd: np.ndarray,
    cfg: mf.MatchedFilterConfig,
    out_dir: str,
    workers: int = 1,
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Runs ``ScoreSamples`` over ``samples`` in a local Beam pipeline (``workers`` > 1: that many processes);
    rows come back through JSON-lines files in ``out_dir.tmp_rows`` (deleted after). Returns the rows sorted by
    id and the rejections."""
    tmp = out_dir.rstrip("/") + ".tmp_rows"
    fs.delete_tree(tmp)
    fs.makedirs(tmp)
    beam_args = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"] if workers > 1 else []
    beats = progress_lib.heartbeat_dir(tmp)
    monitor = progress_lib.ProgressMonitor(beats, "matched filter", len(samples))
    with monitor, beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        scoring = ScoreSamples(bank, psd, cfg, progress_lib.Heartbeat(beats))
        out = pipeline | "Samples" >> beam.Create(list(samples)) | "MatchedFilter" >> scoring
        _ = (
            out.scored
            | "RowJson" >> beam.Map(lambda row: json.dumps(row, allow_nan=True))
            | "WriteRows" >> beam.io.WriteToText(fs.join(tmp, "scored"), file_name_suffix=".jsonl")
        )
        _ = (
            out[REJECTED_TAG]
            | "RejectJson" >> beam.Map(lambda r: json.dumps(asdict(r)))
            | "WriteRejects" >> beam.io.WriteToText(fs.join(tmp, "rejected"), file_name_suffix=".jsonl")
        )
    rows, failed = [], []
    for name, sink in (("scored", rows), ("rejected", failed)):
        for path in sorted(fs.glob(fs.join(tmp, f"{name}*.jsonl"))):
            sink.extend(json.loads(line) for line in fs.read_text(path).splitlines() if line.strip())
    fs.delete_tree(tmp)
    return sorted(rows, key=lambda r: r["id"]), [Rejection(**r) for r in sorted(failed, key=lambda r: r["uid"])]
