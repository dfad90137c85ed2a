"""``python -m model.evaluate``: re-evaluates a saved run.

Re-evaluation reloads ``{prefix}.keras``, scores a split again (``model/scoring.py``), applies the saved threshold
and writes ``RUN_DIR/eval_{split}/`` (metrics JSON, scores CSV, plots); the metrics must reproduce the saved ones.
With ``--baseline SCORES_CSV`` (e.g. the ``scores.csv`` of ``sigforge baseline matched-filter``) the CNN and the
baseline are compared on the same examples (``model/baseline_compare.py``). The ``search`` entry reports efficiency
at low false-alarm probabilities with confidence intervals against a noise-only background (``--background``:
a raw folder or a scores CSV; by default the split's own noise), and with ``--glitch-background`` the false-alarm
rates on glitchy noise at the clean thresholds (``model/search_eval.py``).
"""

from __future__ import annotations

import argparse
import logging
import math
import posixpath
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from model.artifacts import RunPaths, read_history_csv, read_json, write_json, write_scores_csv
from model.baseline_compare import compare_with_baseline, log_comparison, read_baseline_scores
from model.cli_common import add_log_level, fault, setup_logging
from model.config import TrainerConfig, config_from_dict
from model.data import check_dataset
from model.errors import RunError
from model.guards import check_unlocked, verify_artifacts
from model.plots import write_plots
from model.scoring import choose_threshold, predict_split, split_result
from transforms.errors import raise_on_signals

logger = logging.getLogger(__name__)

# Metrics compared between a saved run and its re-evaluation, and the tolerance (scores are float32).
_COMPARED = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss")
_TOLERANCE = 1e-5


def compare_metrics(saved: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, float]:
    """Absolute differences of the compared metrics (missing or NaN on both sides count as equal)."""
    diffs = {}
    for key in _COMPARED:
        a, b = saved.get(key), new.get(key)
        a = math.nan if a is None else float(a)
        b = math.nan if b is None else float(b)
        diffs[key] = 0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b)
    matrix_equal = saved.get("confusion_matrix") == [list(r) for r in new.get("confusion_matrix", [])]
    diffs["confusion_matrix"] = 0.0 if matrix_equal else math.inf
    return diffs


def load_run(run_dir: str) -> tuple[RunPaths, dict[str, Any], TrainerConfig]:
    """(paths, config JSON, resolved config) of a saved run."""
    paths = RunPaths.find(run_dir)
    saved = read_json(paths.config)
    if "config" not in saved:
        raise RunError(f"{paths.config} has no 'config' entry")
    return paths, saved, config_from_dict(saved["config"], paths.config)


def evaluate(
    data_dir: str,
    run_dir: str,
    split: str = "test",
    out_dir: str | None = None,
    baseline: str | None = None,
    baseline_name: str = "matched filter",
    background: str | None = None,
    glitch_background: str | None = None,
    trust_artifacts: bool = False,
    ignore_lock: bool = False,
) -> dict[str, Any]:
    """Re-scores ``split`` with the run's saved model and threshold; writes metrics, scores and plots.

    Output goes to ``out_dir`` (default ``RUN_DIR/eval_{split}``). Returns the metrics JSON payload, which
    includes ``reproduces_saved`` (True when every compared metric is within 1e-5 of the run's metrics) and,
    with ``baseline`` (a scores CSV, see :func:`read_baseline_scores`), the comparison of
    :func:`compare_with_baseline` under ``baseline``; ``search``: :func:`model.search_eval.search_metrics` against
    ``background`` (raw folder or scores CSV; default the split's noise) and ``glitch_background``. The dataset
    must not be locked by a live sigforge run (unless ``ignore_lock``), and the run's model and the dataset's
    manifest and statistics must match the digests
    recorded at training (unless ``trust_artifacts``; ``model/guards.py``).
    """
    baseline_scores = read_baseline_scores(baseline) if baseline is not None else None
    import keras

    import model.layers  # noqa: F401  (registers the custom layers for deserialization)

    paths, saved_config, config = load_run(run_dir)
    check_unlocked(data_dir, "evaluate", ignore_lock)
    verify_artifacts(paths.run_dir, data_dir, "evaluate", trust_artifacts)
    saved_metrics = read_json(paths.metrics) if _exists(paths.metrics) else None
    needs_val = saved_metrics is None and split != "val"
    info = check_dataset(data_dir, config, splits=[split, "val"] if needs_val else [split])
    if info.manifest_sha256 != saved_config.get("manifest", {}).get("sha256"):
        logger.warning("dataset manifest %s differs from the one this run was trained on", info.manifest_path)
    if not _exists(paths.model):
        raise RunError(f"saved model {paths.model} is missing")
    network = keras.saving.load_model(paths.model, compile=False)

    scores = predict_split(network, info, split, config)
    if saved_metrics is not None:
        threshold = float(saved_metrics["threshold"]["value"])
    else:
        logger.warning("%s is missing: choosing the threshold on val again", paths.metrics)
        threshold = choose_threshold(scores if split == "val" else predict_split(network, info, "val", config), config)
    result = split_result(scores, threshold, config)

    out_dir = out_dir or posixpath.join(paths.run_dir, f"eval_{split}")
    prefix = f"{paths.prefix}_eval_{split}"
    import tensorflow as tf

    tf.io.gfile.makedirs(out_dir)
    payload: dict[str, Any] = {
        "prefix": prefix,
        "run_dir": paths.run_dir,
        "data_dir": data_dir,
        "manifest_sha256": info.manifest_sha256,
        "manifest_matches_run": info.manifest_sha256 == saved_config.get("manifest", {}).get("sha256"),
        "threshold": {"value": threshold, "source": "saved" if saved_metrics else "val"},
        "splits": {split: result.metrics},
    }
    saved_split = (saved_metrics or {}).get("splits", {}).get(split)
    if saved_split is not None:
        diffs = compare_metrics(saved_split, result.metrics)
        payload["max_abs_diff_vs_saved"] = diffs
        payload["reproduces_saved"] = all(d <= _TOLERANCE for d in diffs.values())
        level = logging.INFO if payload["reproduces_saved"] else logging.WARNING
        logger.log(
            level,
            "re-evaluation of %s %s the saved metrics: %s",
            split,
            "reproduces" if payload["reproduces_saved"] else "DOES NOT reproduce",
            diffs,
        )
    if baseline_scores is not None:
        payload["baseline"] = compare_with_baseline(
            scores, baseline_scores, config, posixpath.join(out_dir, "plots"), prefix, baseline_name
        )
    if int(scores.labels.sum()):
        payload["search"] = _search(
            scores,
            info,
            split,
            config,
            paths,
            data_dir,
            out_dir,
            prefix,
            baseline_scores,
            baseline_name,
            background,
            glitch_background,
        )
    write_json(posixpath.join(out_dir, f"{prefix}_metrics.json"), payload)
    write_scores_csv(posixpath.join(out_dir, f"scores_{split}.csv"), scores.uids, scores.labels, scores.scores)
    write_plots(
        posixpath.join(out_dir, "plots"),
        prefix,
        read_history_csv(paths.history),
        {split: result},
        focus=split,
        title=f"{paths.prefix}: re-evaluation on {split}",
    )
    logger.info("evaluation of %s on %s written to %s", paths.run_dir, split, out_dir)
    return payload


def _search(
    scores,
    info,
    split,
    config,
    paths,
    data_dir,
    out_dir,
    prefix,
    baseline_scores,
    baseline_name,
    background,
    glitch_background,
) -> dict[str, Any]:
    """The ``search`` entry and its plot (``model/search_eval.py``)."""
    from model import search_eval as S

    search = S.search_metrics(
        scores,
        S.split_distance(info, split, scores.uids),
        config,
        background=S.cnn_background(background, paths.run_dir, data_dir) if background else None,
        glitch_background=S.cnn_background(glitch_background, paths.run_dir, data_dir) if glitch_background else None,
        baseline=baseline_scores,
        baseline_background=S.baseline_sibling(baseline_scores.path, S.BACKGROUND_CSV) if baseline_scores else None,
        baseline_glitch_background=(
            S.baseline_sibling(baseline_scores.path, S.GLITCH_BACKGROUND_CSV) if baseline_scores else None
        ),
    )
    search["plot"] = S.write_search_plot(posixpath.join(out_dir, "plots"), prefix, search, baseline_name)
    S.log_search(search, baseline_name)
    return search


def _exists(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate",
        description="Re-evaluate a saved training run on one split of a normalized sigforge dataset: reload "
        "RUN/{prefix}.keras, score the split, apply the threshold saved in the run's metrics JSON and write "
        "metrics JSON, scores CSV and plots to RUN/eval_{split}/ (or --out).",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="dataset folder (local or gs://) holding manifest.json, "
        "stats/transformed_metadata/ and norm/{train,val,test}/ shards",
    )
    parser.add_argument("--run", required=True, help="run folder written by `python -m model.train`")
    parser.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="split to score (default: test)"
    )
    parser.add_argument("--out", default=None, help="output folder (default: RUN/eval_{split})")
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="SCORES_CSV",
        help="also compare with a baseline's per-example scores (id,label,score[,snr] CSV, e.g. the scores.csv of "
        "`sigforge baseline matched-filter` on the same raw data): joint ROC and efficiency-vs-SNR plots and the "
        "sensitivity ratio CNN / baseline and SNR at 50 %% efficiency at FAP 0.1, 0.01, 0.001 per SNR bin in the "
        "metrics JSON",
    )
    parser.add_argument(
        "--baseline-name", default="matched filter", help="the baseline's name in plots (default: matched filter)"
    )
    parser.add_argument(
        "--background",
        default=None,
        metavar="RAW_OR_CSV",
        help="noise-only background for the low-FAP search metrics: a raw G2Net folder (e.g. `sigforge make-sample "
        "g2net BG --noise-only --n 20000`), scored here through the run's dataset transform, or a scores CSV "
        "(id,score). Default: the split's own noise examples. FAPs with fewer than evaluation.min_false_alarms "
        "(10) background examples above the threshold are reported as unresolvable. The baseline's background "
        "is the background_scores.csv next to --baseline, when present",
    )
    parser.add_argument(
        "--glitch-background",
        default=None,
        metavar="RAW_OR_CSV",
        help="a glitchy noise-only set (make-sample --noise-only --glitch-rate P): false-alarm rates of the CNN "
        "(and of the baseline, from glitch_background_scores.csv next to --baseline) at the clean thresholds",
    )
    parser.add_argument(
        "--trust-artifacts",
        action="store_true",
        help="load the model even if it or the dataset's statistics differ from the digests recorded at training "
        "(a warning is logged; default: refuse, exit 2)",
    )
    parser.add_argument(
        "--ignore-lock",
        action="store_true",
        help="read the dataset even while a sigforge run holds its lock (default: refuse, exit 2)",
    )
    add_log_level(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 2 on a config/dataset/run error (logged, no traceback)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        payload = evaluate(
            args.data,
            args.run,
            args.split,
            args.out,
            args.baseline,
            args.baseline_name,
            args.background,
            args.glitch_background,
            trust_artifacts=args.trust_artifacts,
            ignore_lock=args.ignore_lock,
        )
    except (Exception, KeyboardInterrupt) as error:
        refusal = fault(error)  # a config, dataset, run, OS fault or interrupt: one line; a bug: its traceback
        if refusal is None:
            raise
        logger.error("%s", refusal)
        return 2
    metrics = payload["splits"][args.split]
    logger.info(
        "%s: ROC-AUC %s, PR-AUC %s, F1 %s at threshold %.4g",
        args.split,
        metrics["roc_auc"],
        metrics["pr_auc"],
        metrics["f1"],
        payload["threshold"]["value"],
    )
    if "baseline" in payload:
        log_comparison(payload["baseline"])
    return 0


if __name__ == "__main__":
    raise_on_signals()  # SIGTERM and SIGINT: one line, exit 2, after every finally ran
    sys.exit(main())
