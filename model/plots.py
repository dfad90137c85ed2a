"""Matplotlib figures of a run (Agg, no pyplot state): learning curves, ROC, PR, confusion matrix, score
histogram, efficiency vs SNR, and a one-page dashboard. Files are written through tf.io.gfile (``gs://`` works).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from transforms.evaluation import metrics as M
from transforms.evaluation.plots import draw_efficiency_at_fap, draw_roc_curves, figure_png, format_value

logger = logging.getLogger(__name__)

_SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


@dataclass(frozen=True)
class SplitResult:
    """Scores of one split: labels (n,) 0/1, scores (n,) in [0, 1], metrics dict, SNR efficiency or None."""

    split: str
    labels: np.ndarray
    scores: np.ndarray
    metrics: Mapping[str, Any]
    efficiency: Mapping[str, Any] | None = None


def _history_series(history: Mapping[str, Sequence[float]], key: str) -> np.ndarray | None:
    values = history.get(key)
    if values is None or len(values) == 0:
        return None
    return np.asarray(values, dtype=np.float64)


def draw_history(ax, history: Mapping[str, Sequence[float]], key: str, title: str, ylabel: str) -> None:
    """Train and val curves of ``key`` per epoch (epochs 1-based)."""
    drawn = False
    for prefix, label, style in (("", "train", "-"), ("val_", "val", "--")):
        series = _history_series(history, prefix + key)
        if series is not None:
            ax.plot(np.arange(1, series.size + 1), series, style, marker="o", ms=3, label=label)
            drawn = True
    ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, f"no '{key}' in history", ha="center", va="center", transform=ax.transAxes)


def draw_learning_rate(ax, history: Mapping[str, Sequence[float]]) -> None:
    series = _history_series(history, "learning_rate")
    ax.set_title("Learning rate (end of epoch)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    if series is None:
        ax.text(0.5, 0.5, "no learning rate logged", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot(np.arange(1, series.size + 1), series, marker="o", ms=3)
    if np.all(series > 0):
        ax.set_yscale("log")


def draw_roc(ax, results: Sequence[SplitResult]) -> None:
    for r in results:
        fpr, tpr, _ = M.roc_curve(r.labels, r.scores)
        auc = r.metrics.get("roc_auc")
        ax.plot(fpr, tpr, color=_SPLIT_COLORS.get(r.split), label=f"{r.split} (AUC {format_value(auc)})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set_title("ROC curve")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def draw_pr(ax, results: Sequence[SplitResult]) -> None:
    for r in results:
        precision, recall, _ = M.precision_recall_curve(r.labels, r.scores)
        ap = r.metrics.get("pr_auc")
        ax.step(
            np.r_[0.0, recall],
            np.r_[1.0, precision],
            where="post",
            color=_SPLIT_COLORS.get(r.split),
            label=f"{r.split} (AP {format_value(ap)})",
        )
        prevalence = float(np.mean(r.labels)) if r.labels.size else 0.0
        ax.axhline(prevalence, ls=":", color=_SPLIT_COLORS.get(r.split), alpha=0.6)
    ax.set_title("Precision-recall curve (dotted: prevalence)")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")


def draw_confusion(ax, result: SplitResult) -> None:
    matrix = np.asarray(result.metrics["confusion_matrix"], dtype=np.int64)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    total = max(int(matrix.sum()), 1)
    for (i, j), value in np.ndenumerate(matrix):
        dark = value > matrix.max() / 2
        ax.text(
            j, i, f"{value}\n({100 * value / total:.1f}%)", ha="center", va="center", color="white" if dark else "black"
        )
    ax.set_xticks([0, 1], labels=["pred 0", "pred 1"])
    ax.set_yticks([0, 1], labels=["true 0", "true 1"])
    ax.set_title(f"Confusion matrix [{result.split}], threshold {result.metrics['threshold']:.3g}")


def draw_score_hist(ax, result: SplitResult) -> None:
    # Bins over the observed range (and the threshold), so a narrow score distribution stays readable.
    threshold = float(result.metrics["threshold"])
    lo = min(float(result.scores.min()), threshold) if result.scores.size else 0.0
    hi = max(float(result.scores.max()), threshold) if result.scores.size else 1.0
    pad = max(hi - lo, 1e-6) * 0.05
    bins = np.linspace(max(lo - pad, 0.0), min(hi + pad, 1.0), 41)
    for label, color in ((0, "tab:blue"), (1, "tab:red")):
        values = result.scores[result.labels == label]
        ax.hist(values, bins=bins, alpha=0.55, color=color, label=f"label {label} (n={values.size})")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.3g}")
    ax.set_title(f"Score distribution [{result.split}]")
    ax.set_xlabel("model score P(label = 1)")
    ax.set_ylabel("examples")
    ax.legend()


def draw_efficiency(ax, result: SplitResult) -> None:
    ax.set_title(f"Efficiency vs SNR [{result.split}]")
    ax.set_xlabel("injected SNR (bin median)")
    ax.set_ylabel("efficiency / ROC-AUC")
    ax.grid(alpha=0.3)
    rows = [b for b in (result.efficiency or {}).get("bins", []) if b["n_positive"] > 0]
    if not rows:
        ax.text(0.5, 0.5, "no SNR column in the data tables", ha="center", va="center", transform=ax.transAxes)
        return
    x = np.array([b["snr_median"] for b in rows])
    eff = np.array([b["efficiency"] for b in rows], dtype=np.float64)
    auc = np.array([np.nan if b["roc_auc"] is None else b["roc_auc"] for b in rows], dtype=np.float64)
    ax.plot(x, eff, marker="o", label=f"efficiency at threshold {result.efficiency['threshold']:.3g}")
    ax.plot(x, auc, marker="s", label="ROC-AUC vs all noise")
    far = result.efficiency.get("false_alarm_rate")
    if far is not None:
        ax.axhline(far, ls=":", color="grey", label=f"false-alarm rate {far:.3g}")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")


def save_figure(fig: Figure, path: str) -> str:
    """Writes ``fig`` as PNG to ``path`` (local or gs://)."""
    import tensorflow as tf

    data = figure_png(fig)
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(data)
    return path


def write_comparison_plots(
    plot_dir: str,
    prefix: str,
    roc_curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    efficiency_curves: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]],
    title: str = "",
) -> dict[str, str]:
    """``{prefix}_roc_vs_baseline.png`` and ``{prefix}_efficiency_vs_baseline.png`` in ``plot_dir``: several
    searches on the same examples (see :func:`draw_roc_curves`, :func:`draw_efficiency_at_fap`)."""
    import tensorflow as tf

    tf.io.gfile.makedirs(plot_dir)
    paths = {}
    for name, draw in (
        ("roc_vs_baseline", lambda ax: draw_roc_curves(ax, roc_curves, f"ROC {title}".strip())),
        (
            "efficiency_vs_baseline",
            lambda ax: draw_efficiency_at_fap(ax, efficiency_curves, f"Efficiency vs SNR {title}".strip()),
        ),
    ):
        fig = Figure(figsize=(7, 5.5))
        draw(fig.subplots())
        paths[name] = save_figure(fig, f"{plot_dir.rstrip('/')}/{prefix}_{name}.png")
    return paths


def write_plots(
    plot_dir: str,
    prefix: str,
    history: Mapping[str, Sequence[float]],
    results: Mapping[str, SplitResult],
    focus: str = "test",
    title: str = "",
) -> dict[str, str]:
    """Writes every plot of a run into ``plot_dir`` as ``{prefix}_{name}.png``; returns name -> path.

    ROC and PR show every split in ``results``; the confusion matrix, histogram and SNR efficiency show
    ``focus``. The efficiency plot is written only when ``results[focus].efficiency`` is set.
    """
    import tensorflow as tf

    tf.io.gfile.makedirs(plot_dir)
    focus_result = results[focus]
    ordered = [results[s] for s in ("train", "val", "test") if s in results]
    paths: dict[str, str] = {}

    def path(name: str) -> str:
        return f"{plot_dir.rstrip('/')}/{prefix}_{name}.png"

    fig = Figure(figsize=(24, 10))
    axes = fig.subplots(2, 4)
    draw_history(axes[0, 0], history, "loss", "Loss (binary cross-entropy)", "loss")
    draw_history(axes[0, 1], history, "auc", "ROC-AUC per epoch", "ROC-AUC")
    draw_learning_rate(axes[0, 2], history)
    draw_score_hist(axes[0, 3], focus_result)
    draw_roc(axes[1, 0], ordered)
    draw_pr(axes[1, 1], ordered)
    draw_confusion(axes[1, 2], focus_result)
    draw_efficiency(axes[1, 3], focus_result)
    fig.suptitle(title or f"{prefix}: {focus} metrics", fontsize=16)
    paths["dashboard"] = save_figure(fig, path("dashboard"))

    fig = Figure(figsize=(20, 5))
    axes = fig.subplots(1, 4)
    draw_history(axes[0], history, "loss", "Loss (binary cross-entropy)", "loss")
    draw_history(axes[1], history, "auc", "ROC-AUC per epoch", "ROC-AUC")
    draw_history(axes[2], history, "pr_auc", "PR-AUC per epoch", "PR-AUC")
    draw_learning_rate(axes[3], history)
    fig.suptitle(f"{prefix}: learning curves")
    paths["learning_curves"] = save_figure(fig, path("learning_curves"))

    single = (
        ("roc_curve", lambda ax: draw_roc(ax, ordered)),
        ("pr_curve", lambda ax: draw_pr(ax, ordered)),
        ("confusion_matrix", lambda ax: draw_confusion(ax, focus_result)),
        ("score_hist", lambda ax: draw_score_hist(ax, focus_result)),
    )
    if focus_result.efficiency is not None:
        single += (("efficiency_vs_snr", lambda ax: draw_efficiency(ax, focus_result)),)
    for name, draw in single:
        fig = Figure(figsize=(6.5, 5.5))
        draw(fig.subplots())
        paths[name] = save_figure(fig, path(name))
    logger.info("wrote %d plots to %s", len(paths), plot_dir)
    return paths
