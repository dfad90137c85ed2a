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
  (0.1, 0.01, 0.001) the threshold from the noise scores and the efficiency overall and per injected-SNR bin
  (``transforms.evaluation.detection.efficiency_at_fap``), the bank (size, minimal match), the PSD mode and
  the timing.
* ``efficiency_vs_snr.png``; ``rejected.csv`` (``id,path,reason,detail``) when any input was rejected.
* with ``--background BG`` (a noise-only raw folder, ``make-sample g2net BG --noise-only``): ``background_scores.csv``
  (the same bank and PSD) and, in ``metrics.json``, ``search``: efficiency at FAP 1e-2, 1e-3, 1e-4 against that
  background with binomial 95 % intervals, SNR at 50/90 % efficiency and sensitive volume, FAPs the background
  cannot resolve (< 10 false alarms) refused (``transforms.evaluation.fap``); with ``--glitch-background GL``:
  ``glitch_background_scores.csv`` and ``glitches``, the false-alarm rates on glitchy noise at the clean thresholds.
  ``python -m model.evaluate --baseline SCORES_DIR/scores.csv`` picks both CSVs up.

The bank is placed (and, with ``--psd estimated``, the PSD averaged over the label-0 files) on the driver; the
scoring is a Beam pipeline (``ScoreSamples``: a PTransform from ``RawSample`` to score rows, one ``MatchedFilter``
per worker built in ``DoFn.setup``), so a large set spreads over the runner's workers (``--workers N`` runs N
local processes). IO goes through ``beam_pipelines.dataset.fs``, so ``gs://`` paths work. Each bad input (unreadable
or wrong-shape ``.npy``, NaNs, a file without a label, a label without a file, a bad label) is logged with its
id and reason, written to ``rejected.csv`` and counted; the rest are scored.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.recipes.g2net.background import score_background, truth_column
from beam_pipelines.recipes.g2net.scoring import (
    SCORE_COLUMNS,
    RawSample,
    Rejection,
    list_samples,
    load_strain,
    score_with_beam,
)
from transforms.csv_cells import safe_cell
from transforms.evaluation import detection
from transforms.evaluation import fap as F
from transforms.evaluation import metrics as M
from transforms.evaluation.metrics import jsonable
from transforms.recipes.g2net import matched_filter as mf
from transforms.recipes.g2net import strain as strain_lib

_LOG = logging.getLogger(__name__)

SCORES_CSV = "scores.csv"
BACKGROUND_CSV = "background_scores.csv"
GLITCH_BACKGROUND_CSV = "glitch_background_scores.csv"
METRICS_JSON = "metrics.json"
REJECTED_CSV = "rejected.csv"
EFFICIENCY_PLOT = "efficiency_vs_snr.png"
PSD_MODES = ("design", "estimated")
DEFAULT_TEMPLATES = 256


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
    faps: Sequence[float] | None = None,
    snr_bins: int | Sequence[float] = 6,
    overwrite: bool = False,
    workers: int = 1,
    labels_csv: str = "training_labels.csv",
    npy_glob: str = "train/**/*.npy",
    injections_csv: str | None = "injections.csv",
    background: str | None = None,
    glitch_background: str | None = None,
    injection_snr_range: tuple[float, float] | None = (4.0, 20.0),
    search_faps: Sequence[float] = F.SEARCH_FAPS,
) -> dict[str, Any]:
    """Scores every labelled file of ``data_dir`` and writes ``out_dir`` (module doc). Returns the metrics payload.

    Raises StageError on a refused run: an existing output without ``overwrite``, no labels, no files, an
    unknown PSD mode, or no noise sample for ``psd="estimated"``.
    """
    if psd not in PSD_MODES:
        raise StageError(f"--psd must be one of {PSD_MODES}, got {psd!r}")
    if fs.exists(fs.join(out_dir, SCORES_CSV)) and not overwrite:
        raise StageError(f"{out_dir} already holds {SCORES_CSV}; pass --overwrite to replace it", code="output_exists")
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

    extra = {}
    for name, folder in ((BACKGROUND_CSV, background), (GLITCH_BACKGROUND_CSV, glitch_background)):
        if folder:
            extra[name] = score_background(folder, bank, psd_array, cfg, out_dir, workers, labels_csv, npy_glob)
    labels = np.array([r["label"] for r in rows], dtype=np.int64)
    scores = np.array([r["score"] for r in rows], dtype=np.float64)
    snr = np.array([r["snr"] for r in rows], dtype=np.float64)
    has_snr = bool(np.any(np.isfinite(snr[labels == 1])))
    faps = detection.DEFAULT_FAPS if faps is None else faps
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
    if extra:
        noise = np.array([r["score"] for r in extra.get(BACKGROUND_CSV, rows) if r["label"] == 0], dtype=np.float64)
        distance = truth_column(data_dir, injections_csv, "distance_mpc", [r["id"] for r in rows])
        positive = labels == 1
        if BACKGROUND_CSV in extra:
            payload["search"] = F.detection_at_faps(
                noise,
                scores[positive],
                snr[positive] if has_snr else None,
                distance[positive] if distance is not None else None,
                faps=search_faps,
                bins=snr_bins,
                snr_range=injection_snr_range,
            )
            payload["search"]["background"] = {"source": background, "n_noise": int(noise.size)}
        if GLITCH_BACKGROUND_CSV in extra:
            glitchy = np.array([r["score"] for r in extra[GLITCH_BACKGROUND_CSV]], dtype=np.float64)
            payload["glitches"] = {"source": glitch_background, **F.false_alarm_rates(noise, glitchy, search_faps)}
    _write_outputs(out_dir, rows, rejects, payload, efficiency, extra)
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


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"q{q:g}": float(np.quantile(values, q)) for q in (0.5, 0.9, 0.99, 1.0)}


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """scores.csv / rejected.csv: for people, so spreadsheet-safe (``transforms.csv_cells``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(_cell(row[k])) for k in columns})
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.9g}"
    return str(value)


def _write_outputs(out_dir, rows, rejects, payload, efficiency, extra=None) -> None:
    """Writes every output into a temporary sibling folder, then publishes it as ``out_dir``."""
    from matplotlib.figure import Figure

    from transforms.evaluation.plots import draw_efficiency_at_fap, figure_png

    tmp = out_dir.rstrip("/") + ".tmp_baseline"
    fs.delete_tree(tmp)
    fs.makedirs(tmp)
    fs.write_text(fs.join(tmp, SCORES_CSV), _csv_text(SCORE_COLUMNS, rows))
    for name, extra_rows in (extra or {}).items():
        fs.write_text(fs.join(tmp, name), _csv_text(SCORE_COLUMNS, extra_rows))
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
    "(id,label,score,snr,...), metrics.json (ROC-AUC, efficiency at FAP 0.1, 0.01, 0.001 per SNR bin), "
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
    parser.add_argument(
        "--background",
        default=None,
        metavar="BG",
        help="noise-only raw folder (make-sample g2net BG --noise-only --n 20000) scored with the same bank and PSD: "
        "background_scores.csv and the low-FAP 'search' metrics (FAP 1e-2, 1e-3, 1e-4 with 95%% intervals; FAPs "
        "with < 10 background false alarms refused)",
    )
    parser.add_argument(
        "--glitch-background",
        default=None,
        metavar="GL",
        help="glitchy noise-only raw folder (make-sample ... --noise-only --glitch-rate P): "
        "glitch_background_scores.csv and its false-alarm rates at the clean thresholds",
    )
    parser.add_argument(
        "--injection-snr-range",
        type=float,
        nargs=2,
        default=(4.0, 20.0),
        metavar=("LO", "HI"),
        help="SNR range the injections were drawn uniformly from, for the sensitive-volume weights (default 4 20)",
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
        background=args.background,
        glitch_background=args.glitch_background,
        injection_snr_range=tuple(args.injection_snr_range),
    )
    return 0
