"""``sigforge baseline matched-filter``: score G2Net-layout raw data with the matched filter of
``transforms.recipes.g2net.matched_filter`` and write scores, metrics and an efficiency plot.

    sigforge baseline matched-filter --data RAW --psd design|estimated --out SCORES_DIR [--templates N] [--seed S]

Input (the Kaggle layout that ``sigforge make-sample g2net`` writes): ``RAW/train/**/*.npy`` (strain (3, 4096)
float64, H1/L1/V1, 2048 Hz), ``RAW/training_labels.csv`` (``id,target``) and, optionally,
``RAW/injections.csv`` (``id,snr``: the injected network SNR, for the efficiency curves).

Output in SCORES_DIR (written to ``SCORES_DIR.tmp_baseline`` and renamed when complete):

* ``scores.csv``: ``id,label,score,snr,m1,m2,spin1z,spin2z,tc`` per scored sample; ``score`` is the network SNR
  ``sqrt(stat)`` of the matched filter, ``snr`` the injected SNR (empty when unknown), ``m1, m2, spin1z,
  spin2z`` the best template (M_sun), ``tc`` its H1 coalescence time (s from the segment start).
* ``metrics.json``: counts (files seen, scored, rejected by reason), ROC-AUC, per false-alarm probability
  (1e-2, 1e-3) the threshold from the noise scores and the efficiency overall and per injected-SNR bin
  (``model.detection.efficiency_at_fap``), the bank (size, minimal match), the PSD mode and the timing.
* ``efficiency_vs_snr.png``; ``rejected.csv`` (``id,path,reason,detail``) when any input was rejected.

The bank is placed (and, with ``--psd estimated``, the PSD averaged over the label-0 files) on the driver; the
scoring is a Beam pipeline (``ScoreSamples``: a PTransform from ``RawSample`` to score rows, one ``MatchedFilter``
per worker built in ``DoFn.setup``), so a large set spreads over the runner's workers (``--workers N`` runs N
local processes). IO goes through ``beam_pipelines.fs``, so ``gs://`` paths work. Each bad input (unreadable
or wrong-shape ``.npy``, NaNs, a file without a label, a label without a file, a bad label) is logged with its
id and reason, written to ``rejected.csv`` and counted; the rest are scored.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import posixpath
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import apache_beam as beam
import numpy as np

from beam_pipelines import fs
from beam_pipelines.manifest import StageError
from beam_pipelines.options import make_pipeline_options
from transforms.recipes.g2net import matched_filter as mf
from transforms.recipes.g2net import strain as strain_lib

_LOG = logging.getLogger(__name__)

SCORES_CSV = "scores.csv"
METRICS_JSON = "metrics.json"
REJECTED_CSV = "rejected.csv"
EFFICIENCY_PLOT = "efficiency_vs_snr.png"
SCORE_COLUMNS = ("id", "label", "score", "snr", "m1", "m2", "spin1z", "spin2z", "tc")
REJECTED_TAG = "rejected"
PSD_MODES = ("design", "estimated")
DEFAULT_TEMPLATES = 256


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
    strain = strain_lib.decode_npy(fs.read_bytes(sample.path))
    return strain_lib.validate_strain(strain, len(cfg.detectors), cfg.n_samples)


def _reject(rejects: list[Rejection], sample: RawSample, error: strain_lib.RejectedInput) -> None:
    _LOG.error("%s (%s): rejected: %s: %s", sample.uid, sample.path, error.reason, error.detail)
    rejects.append(Rejection(sample.uid, sample.path, error.reason, error.detail))


def _estimated_psd(samples: Sequence[RawSample], cfg: mf.MatchedFilterConfig, bad: dict[str, Rejection]):
    """Average PSD of the readable label-0 samples (``mf.estimate_psd``); unreadable ones go to ``bad``."""
    count = 0

    def noise():
        nonlocal count
        for sample in samples:
            if sample.label != 0:
                continue
            try:
                strain = load_strain(sample, cfg)
            except strain_lib.RejectedInput as error:
                bad[sample.uid] = Rejection(sample.uid, sample.path, error.reason, error.detail)
                continue
            count += 1
            yield strain

    try:
        psd = mf.estimate_psd(noise(), cfg)
    except ValueError:
        raise StageError("--psd estimated needs at least one readable label-0 (noise) sample") from None
    return psd, count


def run_matched_filter(
    data_dir: str,
    out_dir: str,
    *,
    psd: str = "design",
    n_templates: int = DEFAULT_TEMPLATES,
    seed: int = 0,
    tc_range: tuple[float, float] | None = None,
    faps: Sequence[float] = (1e-2, 1e-3),
    snr_bins: int | Sequence[float] = 6,
    overwrite: bool = False,
    workers: int = 1,
    labels_csv: str = "training_labels.csv",
    npy_glob: str = "train/**/*.npy",
    injections_csv: str | None = "injections.csv",
) -> dict[str, Any]:
    """Scores every labelled file of ``data_dir`` and writes ``out_dir`` (module doc). Returns the metrics payload.

    Raises StageError on a refused run: an existing output without ``overwrite``, no labels, no files, an
    unknown PSD mode, or no noise sample for ``psd="estimated"``.
    """
    from model import detection
    from model import metrics as M

    if psd not in PSD_MODES:
        raise StageError(f"--psd must be one of {PSD_MODES}, got {psd!r}")
    if fs.exists(fs.join(out_dir, SCORES_CSV)) and not overwrite:
        raise StageError(f"{out_dir} already holds {SCORES_CSV}; pass --overwrite to replace it")
    started = time.monotonic()
    try:
        cfg = mf.MatchedFilterConfig(**({"tc_range": tuple(tc_range)} if tc_range else {}))
    except ValueError as error:
        raise StageError(f"matched-filter settings refused: {error}") from None
    samples, rejects = list_samples(data_dir, labels_csv, npy_glob, injections_csv)
    _LOG.info("matched filter: %d labelled files in %s (%d inputs rejected)", len(samples), data_dir, len(rejects))

    bad: dict[str, Rejection] = {}
    psd_samples = None
    if workers < 1:
        raise StageError("--workers must be at least 1")
    if psd == "design":
        psd_array = mf.design_psds(cfg)
    else:
        psd_array, psd_samples = _estimated_psd(samples, cfg, bad)
        _LOG.info("estimated the PSD from %d noise samples", psd_samples)
    bank = mf.make_bank(n_templates, psd_array[0], cfg, seed=seed)
    setup_seconds = time.monotonic() - started

    for uid, error in sorted(bad.items()):
        _LOG.error("%s (%s): rejected: %s: %s", uid, error.path, error.reason, error.detail)
        rejects.append(error)
    scoring_started = time.monotonic()
    rows, failed = score_with_beam([s for s in samples if s.uid not in bad], bank, psd_array, cfg, out_dir, workers)
    rejects.extend(failed)
    scoring_seconds = time.monotonic() - scoring_started
    if not rows:
        raise StageError(f"no file of {data_dir} could be scored ({len(rejects)} rejected)")

    labels = np.array([r["label"] for r in rows], dtype=np.int64)
    scores = np.array([r["score"] for r in rows], dtype=np.float64)
    snr = np.array([r["snr"] for r in rows], dtype=np.float64)
    has_snr = bool(np.any(np.isfinite(snr[labels == 1])))
    efficiency = detection.efficiency_at_fap(labels, scores, snr if has_snr else None, faps, snr_bins)
    reasons = Counter(r.reason for r in rejects)
    payload: dict[str, Any] = {
        "search": "matched_filter",
        "data_dir": data_dir,
        "statistic": "network SNR = sqrt(max over templates and H1 times of rho_H1^2 + sum over L1, V1 of their "
        "max rho^2 within the H1 light-travel window); see transforms/recipes/g2net/matched_filter.py",
        "psd": {"mode": psd, "noise_samples": psd_samples},
        "bank": {
            "approximant": cfg.approximant,
            "n_templates": len(bank),
            "seed": seed,
            "minimal_match": bank.minimal_match,
            "n_candidates": bank.n_candidates,
            "mass_range": list(cfg.mass_range),
            "spin_max": cfg.spin_max,
            "chirp_mass_range": [float(bank.chirp_masses.min()), float(bank.chirp_masses.max())],
        },
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "counts": {
            "seen": len(rows) + len(rejects),
            "scored": len(rows),
            "rejected": len(rejects),
            "rejected_by_reason": dict(sorted(reasons.items())),
            "positives": int(labels.sum()),
            "negatives": int((labels == 0).sum()),
            "positives_with_snr": int(np.sum(np.isfinite(snr) & (labels == 1))),
        },
        "roc_auc": M.roc_auc(labels, scores),
        "noise_score_quantiles": _quantiles(scores[labels == 0]),
        "efficiency_at_fap": efficiency,
        "seconds": {
            "setup": setup_seconds,
            "scoring": scoring_seconds,
            "per_sample": scoring_seconds / len(rows),
            "total": time.monotonic() - started,
        },
    }
    _write_outputs(out_dir, rows, rejects, payload, efficiency)
    _LOG.info(
        "matched filter (%s PSD, %d templates): %d scored, %d rejected, ROC-AUC %.4f, %.1f ms per sample -> %s",
        psd,
        len(bank),
        len(rows),
        len(rejects),
        payload["roc_auc"],
        1e3 * payload["seconds"]["per_sample"],
        out_dir,
    )
    return payload


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

    def __init__(self, bank: mf.TemplateBank, psd: np.ndarray, cfg: mf.MatchedFilterConfig):
        super().__init__()
        self._bank, self._psd, self._cfg = bank, psd, cfg

    def expand(self, samples):
        return (
            samples
            | "Spread" >> beam.Reshuffle()
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
    with beam.Pipeline(options=make_pipeline_options(beam_args)) as pipeline:
        out = pipeline | "Samples" >> beam.Create(list(samples)) | "MatchedFilter" >> ScoreSamples(bank, psd, cfg)
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


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"q{q:g}": float(np.quantile(values, q)) for q in (0.5, 0.9, 0.99, 1.0)}


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row[k]) for k in columns})
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.9g}"
    return str(value)


def _write_outputs(out_dir, rows, rejects, payload, efficiency) -> None:
    """Writes every output into a temporary sibling folder, then publishes it as ``out_dir``."""
    from matplotlib.figure import Figure

    from model.metrics import jsonable
    from model.plots import draw_efficiency_at_fap, figure_png

    tmp = out_dir.rstrip("/") + ".tmp_baseline"
    fs.delete_tree(tmp)
    fs.makedirs(tmp)
    fs.write_text(fs.join(tmp, SCORES_CSV), _csv_text(SCORE_COLUMNS, rows))
    if rejects:
        fs.write_text(fs.join(tmp, REJECTED_CSV), _csv_text(("id", "path", "reason", "detail"), _reject_rows(rejects)))
    fig = Figure(figsize=(7, 5.5))
    draw_efficiency_at_fap(fig.subplots(), [("matched filter", efficiency)], "Matched filter: efficiency vs SNR")
    fs.write_bytes(fs.join(tmp, EFFICIENCY_PLOT), figure_png(fig))
    fs.write_text(fs.join(tmp, METRICS_JSON), json.dumps(jsonable(payload), indent=2) + "\n")
    fs.publish(tmp, out_dir)


def _reject_rows(rejects: Sequence[Rejection]) -> list[dict[str, str]]:
    return [{"id": r.uid, "path": r.path, "reason": r.reason, "detail": r.detail} for r in rejects]


# ---- `sigforge baseline matched-filter` (the g2net recipe's baseline; the CLI lists it from the registry) ----
HELP = "frequency-domain matched filter over a template bank -> scores.csv, metrics.json, plot"
DESCRIPTION = (
    "Matched-filter baseline on G2Net-layout raw data (RAW/train/**/*.npy, training_labels.csv, "
    "optional injections.csv for the injected SNR): Tukey window, complex SNR per detector against an "
    "aligned-spin IMRPhenomD template bank (PyCBC/LALSimulation), network statistic maximized over templates "
    "and coalescence times within the inter-detector light-travel delays. Writes SCORES_DIR/scores.csv "
    "(id,label,score,snr,...), metrics.json (ROC-AUC, efficiency at FAP 1e-2 and 1e-3 per SNR bin), "
    "efficiency_vs_snr.png and rejected.csv for inputs that could not be scored. Exit code 2 for a refused run."
)


def add_arguments(parser) -> None:
    """The subcommand's flags."""
    parser.add_argument("--data", required=True, help="raw G2Net-layout folder RAW (local or gs://)")
    parser.add_argument(
        "--psd",
        choices=["design", "estimated"],
        default="design",
        help="design: analytic aLIGO/AdVirgo curves; estimated: Welch average over the label-0 samples of --data",
    )
    parser.add_argument("--out", required=True, help="output folder SCORES_DIR")
    parser.add_argument("--templates", type=int, default=DEFAULT_TEMPLATES, help="template bank size")
    parser.add_argument("--workers", type=int, default=1, help="local Beam worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bank's candidate draw (default 0)")
    parser.add_argument(
        "--tc-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="geocentric coalescence times searched, s from the segment start (default: the generator's 1.2 1.8)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing SCORES_DIR")


def main(args) -> int:
    """Runs the baseline from parsed ``args``; a refused run raises StageError (exit code 2 in the CLI)."""
    if args.templates < 1:
        raise StageError("--templates must be at least 1")
    run_matched_filter(
        args.data,
        args.out,
        psd=args.psd,
        n_templates=args.templates,
        seed=args.seed,
        tc_range=tuple(args.tc_range) if args.tc_range else None,
        overwrite=args.overwrite,
        workers=args.workers,
    )
    return 0
