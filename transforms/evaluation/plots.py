"""Figures that compare searches on the same examples (a CNN vs the matched-filter baseline): ROC curves and
detection efficiency vs injected SNR at fixed false-alarm probabilities. matplotlib's Agg canvas, no pyplot
state; figures come back as PNG bytes, so the caller writes them through its own file API.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from transforms.evaluation import metrics as M


def format_value(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"


def figure_png(fig: Figure) -> bytes:
    """``fig`` rendered as PNG bytes (Agg, 110 dpi)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


_FAP_STYLES = ("-", "--", ":", "-.")


def draw_roc_curves(ax, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str = "ROC curve") -> None:
    """One ROC curve per ``(name, labels (n,) 0/1, scores (n,))``, AUC in the legend; log-scaled FPR axis so the
    low false-alarm end (where detection thresholds live) is visible."""
    for name, labels, scores in curves:
        fpr, tpr, _ = M.roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {format_value(M.roc_auc(labels, scores))})")
    n_neg = max(int(np.sum(np.asarray(curves[0][1]) == 0)), 1) if curves else 1
    grid = np.logspace(np.log10(0.5 / n_neg), 0, 50)
    ax.plot(grid, grid, ":", color="grey", label="chance")
    ax.set_xscale("log")
    ax.set_xlim(0.5 / n_neg, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.set_xlabel("false-alarm probability (false positive rate, log)")
    ax.set_ylabel("detection efficiency (true positive rate)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")


def draw_efficiency_at_fap(
    ax, curves: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]], title: str = "Efficiency vs SNR"
) -> None:
    """Efficiency vs injected SNR (bin medians) at fixed false-alarm probabilities, with binomial 1-sigma bars.

    ``curves``: ``(name, transforms.evaluation.detection.efficiency_at_fap result)``; one colour and marker per
    name (earlier curves drawn wider, so equal values stay visible), one line style per FAP.
    """
    ax.set_title(title)
    ax.set_xlabel("injected network SNR (bin median)")
    ax.set_ylabel("detection efficiency")
    ax.grid(alpha=0.3)
    drawn = False
    for index, (name, per_fap) in enumerate(curves):
        color, marker = f"C{index}", "osD^v"[index % 5]
        width, size = 1.5 + 1.5 * (len(curves) - 1 - index), 4 + 2 * (len(curves) - 1 - index)
        for style, (key, entry) in zip(_FAP_STYLES, per_fap.items(), strict=False):
            rows = [b for b in (entry.get("efficiency_vs_snr") or {}).get("bins", []) if b["n_positive"] > 0]
            if not rows:
                continue
            x = np.array([b["snr_median"] for b in rows], dtype=np.float64)
            eff = np.array([b["efficiency"] for b in rows], dtype=np.float64)
            err = np.sqrt(eff * (1.0 - eff) / np.array([b["n_positive"] for b in rows], dtype=np.float64))
            limited = f" (no noise above: < 1/{entry['n_noise']})" if entry.get("resolution_limited") else ""
            label = f"{name}, FAP {key}{limited}"
            ax.errorbar(
                x, eff, yerr=err, ls=style, lw=width, marker=marker, ms=size, capsize=2, color=color, label=label
            )
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no injected SNR available", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize="small")


def draw_search_efficiency(fig: Figure, curves: Sequence[tuple[str, Mapping[str, Any]]], title: str = "") -> None:
    """One panel per FAP: efficiency vs injected SNR of every search in ``curves`` (``(name,
    transforms.evaluation.fap.detection_at_faps result)``) with their binomial confidence intervals; a FAP the
    background cannot resolve is shown as such, with the smallest FAP it supports."""
    keys = list(dict.fromkeys(key for _, result in curves for key in result["faps"]))
    axes = np.atleast_1d(fig.subplots(1, max(len(keys), 1), sharex=True, sharey=True))
    for ax, key in zip(axes, keys, strict=False):
        ax.set_title(f"FAP {key}")
        ax.set_xlabel("injected network SNR (bin median)")
        ax.grid(alpha=0.3)
        notes = []
        for index, (name, result) in enumerate(curves):
            entry = result["faps"].get(key)
            if entry is None:
                continue
            if not entry.get("resolvable"):
                notes.append(
                    f"{name}: unresolvable ({result['n_noise']} noise; FAP >= {entry['min_resolvable_fap']:.2g})"
                )
                continue
            rows = [b for b in (entry.get("efficiency_vs_snr") or {}).get("bins", []) if b["n_positive"] > 0]
            if not rows:
                continue
            x = np.array([b["snr_median"] for b in rows])
            eff = np.array([b["efficiency"] for b in rows])
            low = np.array([b["interval"][0] for b in rows])
            high = np.array([b["interval"][1] for b in rows])
            overall = entry["efficiency"]
            ax.errorbar(
                x,
                eff,
                yerr=[eff - low, high - eff],
                marker="osD^v"[index % 5],
                capsize=3,
                color=f"C{index}",
                label=f"{name} (overall {format_value(overall)}, SNR50 {format_value(entry.get('snr_at_50pct'))})",
            )
        if notes:
            ax.text(0.02, 0.98, "\n".join(notes), transform=ax.transAxes, va="top", fontsize="small", wrap=True)
        ax.set_ylim(0, 1.05)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize="small")
    axes[0].set_ylabel("detection efficiency (95% interval)")
    if title:
        fig.suptitle(title)
