"""Search-grade evaluation of a run (``python -m model.evaluate --background``): efficiency at low false-alarm
probabilities against a large noise-only background, for the CNN and, on the same injections, the matched-filter
baseline; false-alarm rates on glitchy noise at the clean-noise thresholds.

Foreground: the evaluated split's positives (their injected ``snr`` and ``distance_mpc`` from the data tables).
Background: noise-only scores, either the split's own label-0 examples (tiny: most FAPs unresolvable) or a
separate noise-only set (``sigforge make-sample g2net BG --noise-only --n 20000``), given as

* a raw folder, scored here with the run through ``model.predict`` (the training dataset's saved transform: the
  background goes through exactly what the training data went through), or
* a scores CSV (``id,score``, e.g. the output of ``sigforge predict``).

The baseline's background comes from its own output: ``sigforge baseline matched-filter --background BG`` writes
``background_scores.csv`` (and with ``--glitch-background``, ``glitch_background_scores.csv``) next to
``scores.csv``; they are used when present. Statistics: :mod:`transforms.evaluation.fap` (FAPs the background
cannot resolve with at least 10 false alarms are refused, efficiencies come with binomial 95 % intervals).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.config import TrainerConfig
from model.data import DatasetInfo, read_data_tables
from model.errors import RunError
from model.scoring import SplitScores
from transforms.evaluation import fap as F

logger = logging.getLogger(__name__)

BACKGROUND_CSV = "background_scores.csv"
GLITCH_BACKGROUND_CSV = "glitch_background_scores.csv"
DISTANCE_COLUMN = "distance_mpc"


@dataclass(frozen=True)
class Background:
    """Noise-only scores of one search: where they came from, their ids and scores (n,)."""

    source: str
    uids: list[str]
    scores: np.ndarray


def read_background_csv(path: str) -> Background:
    """A scores CSV: ``id`` (or ``uid``) and ``score`` columns; rows with a ``label`` other than 0 are dropped,
    as are rows without a score (``sigforge predict``'s unreadable inputs). Raises RunError."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise RunError(f"background scores {path} not found")
    with tf.io.gfile.GFile(path, "r") as handle:
        reader = csv.DictReader(io.StringIO(handle.read()))
        rows, columns = list(reader), reader.fieldnames or []
    key = "id" if "id" in columns else "uid" if "uid" in columns else None
    if key is None or "score" not in columns:
        raise RunError(f"background scores {path} need an 'id' (or 'uid') and a 'score' column, got {columns}")
    uids, scores = [], []
    for row in rows:
        label, text = (row.get("label") or "0").strip(), (row.get("score") or "").strip()
        if not text or label not in ("", "0", "0.0"):
            continue
        try:
            score = float(text)
        except ValueError:
            raise RunError(f"{path}: score of {row[key]} is {text!r}") from None
        if not math.isfinite(score):
            raise RunError(f"{path}: score of {row[key]} is not finite")
        uids.append(row[key].strip())
        scores.append(score)
    if not scores:
        raise RunError(f"background scores {path} hold no noise (label 0) score")
    return Background(path, uids, np.asarray(scores, dtype=np.float64))


def cnn_background(source: str, run_dir: str, data_dir: str | None = None) -> Background:
    """The run's scores of a noise-only background: a scores CSV, or a raw folder scored through ``model.predict``
    (with the dataset ``data_dir``'s transform). Files that cannot be scored are logged and left out."""
    if source.endswith(".csv"):
        return read_background_csv(source)
    from model.predict import predict

    result = predict(run_dir, [source], data_dir)
    if not result.scores:
        raise RunError(f"no file of the background {source} could be scored ({len(result.errors)} errors)")
    uids = [uid for uid, _ in result.scores]
    logger.info("background %s: %d noise examples scored by the CNN", source, len(uids))
    return Background(source, uids, np.array([s for _, s in result.scores], dtype=np.float64))


def baseline_sibling(baseline_csv: str, name: str) -> Background | None:
    """``name`` next to the baseline's ``scores.csv``, read as a background, or None when absent."""
    import tensorflow as tf

    path = posixpath.join(posixpath.dirname(baseline_csv), name)
    return read_background_csv(path) if tf.io.gfile.exists(path) else None


def split_distance(info: DatasetInfo, split: str, uids: Sequence[str]) -> np.ndarray | None:
    """``distance_mpc`` of the split's data tables per uid (NaN where empty), or None without such a column."""
    tables = info.splits[split].tables
    rows = read_data_tables(tables) if tables else []
    if not rows or DISTANCE_COLUMN not in rows[0]:
        return None
    by_uid = {}
    for row in rows:
        text = (row.get(DISTANCE_COLUMN) or "").strip()
        try:
            by_uid[row["uid"]] = float(text) if text else math.nan
        except ValueError:
            by_uid[row["uid"]] = math.nan
    return np.array([by_uid.get(u, math.nan) for u in uids], dtype=np.float64)


def search_metrics(
    scores: SplitScores,
    distance: np.ndarray | None,
    config: TrainerConfig,
    background: Background | None = None,
    glitch_background: Background | None = None,
    baseline: Any = None,
    baseline_background: Background | None = None,
    baseline_glitch_background: Background | None = None,
) -> dict[str, Any]:
    """The ``search`` entry of the evaluation JSON (module doc). ``baseline``: a
    :class:`model.baseline_compare.BaselineScores` of the same raw data, or None.

    Returns ``{"background", "cnn", "baseline"?, "cnn_vs_baseline"?, "glitches"?}`` where ``cnn`` and ``baseline``
    are :func:`transforms.evaluation.fap.detection_at_faps` results on the split's positives.
    """
    cfg = config.evaluation
    positive = scores.labels == 1
    snr = scores.snr[positive] if scores.snr is not None else None
    dist = distance[positive] if distance is not None else None
    options = {
        "faps": cfg.search_faps,
        "bins": cfg.snr_bins,
        "snr_range": tuple(cfg.injection_snr_range) if cfg.injection_snr_range else None,
        "min_false_alarms": cfg.min_false_alarms,
        "method": cfg.interval,
    }
    noise = background.scores if background is not None else scores.scores[scores.labels == 0]
    out: dict[str, Any] = {
        "background": {
            "source": background.source if background else f"the {scores.split} split's noise examples",
            "n_noise": int(noise.size),
            "min_resolvable_fap": F.min_resolvable_fap(int(noise.size), cfg.min_false_alarms),
        },
        "cnn": F.detection_at_faps(noise, scores.scores[positive], snr, dist, **options),
    }
    if glitch_background is not None:
        out["glitches"] = {
            "source": glitch_background.source,
            "cnn": F.false_alarm_rates(noise, glitch_background.scores, cfg.search_faps),
        }
    if baseline is None:
        return out
    uids = [u for u, p in zip(scores.uids, positive, strict=True) if p]
    known = np.array([u in baseline.score for u in uids], dtype=bool)
    if not known.any():
        raise RunError(f"no {scores.split} positive has a score in {baseline.path} (is it the same raw data?)")
    base_positive = np.array([baseline.score[u] for u, k in zip(uids, known, strict=True) if k])
    if baseline_background is not None:
        base_noise = baseline_background.scores
    else:
        base_noise = np.array(
            [
                baseline.score[u]
                for u, y in zip(scores.uids, scores.labels, strict=True)
                if y == 0 and u in baseline.score
            ]
        )
    cnn_same = F.detection_at_faps(
        noise,
        scores.scores[positive][known],
        None if snr is None else snr[known],
        None if dist is None else dist[known],
        **options,
    )
    out["baseline"] = F.detection_at_faps(
        base_noise, base_positive, None if snr is None else snr[known], None if dist is None else dist[known], **options
    )
    out["baseline"]["background_source"] = (
        baseline_background.source if baseline_background else f"{baseline.path} ({scores.split} noise)"
    )
    out["cnn_vs_baseline"] = F.distance_ratio(cnn_same, out["baseline"])
    if glitch_background is not None and baseline_glitch_background is not None:
        out["glitches"]["baseline"] = F.false_alarm_rates(
            base_noise, baseline_glitch_background.scores, cfg.search_faps
        )
    return out


def write_search_plot(plot_dir: str, prefix: str, search: dict[str, Any], baseline_name: str) -> str:
    """``{prefix}_search_efficiency.png``: efficiency vs SNR per FAP, the CNN and the baseline on each panel."""
    from matplotlib.figure import Figure

    from model.plots import save_figure
    from transforms.evaluation.plots import draw_search_efficiency

    curves = [("CNN", search["cnn"])] + ([(baseline_name, search["baseline"])] if "baseline" in search else [])
    fig = Figure(figsize=(6 * max(len(search["cnn"]["faps"]), 1), 5))
    draw_search_efficiency(fig, curves, f"{prefix}: efficiency at fixed FAP ({search['background']['n_noise']} noise)")
    import tensorflow as tf

    tf.io.gfile.makedirs(plot_dir)
    return save_figure(fig, f"{plot_dir.rstrip('/')}/{prefix}_search_efficiency.png")


def _interval(entry: dict[str, Any]) -> str:
    low, high = entry["efficiency_interval"]
    return f"{entry['efficiency']:.3f} [{low:.3f}, {high:.3f}]"


def log_search(search: dict[str, Any], baseline_name: str) -> None:
    """One line per FAP: both efficiencies with intervals, or why the FAP is unresolvable."""
    for key, entry in search["cnn"]["faps"].items():
        if not entry.get("resolvable"):
            logger.info("FAP %s: %s", key, entry["reason"])
            continue
        line = f"FAP {key}: CNN efficiency {_interval(entry)}"
        base = search.get("baseline", {}).get("faps", {}).get(key)
        if base and base.get("resolvable"):
            ratio = search["cnn_vs_baseline"][key].get("distance_ratio", math.nan)
            line += f", {baseline_name} {_interval(base)}, sensitive-distance ratio {ratio:.3f}"
        logger.info("%s", line)
