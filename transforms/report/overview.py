"""The recipe-independent figures: what every stage saw, wrote and rejected, the splits, and the split comparison."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transforms.contract import SPLITS, STAGES
from transforms.report.figures import SPLIT_COLORS, Figure, make, new_figure
from transforms.report.skew import SkewResult

OVERVIEW = "Overview"
SKEW = "Split comparison"


def stage_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per recorded stage: seen, written, rejected, seconds, examples/s (blank where a stage has none)."""
    rows = []
    recorded = manifest.get("stages", {})
    for name, entry in sorted(recorded.items(), key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else 99):
        seconds = entry.get("seconds")
        written = entry.get("written")
        rate = written / seconds if written and seconds else None
        rows.append(
            {
                "stage": name,
                "seen": entry.get("seen", ""),
                "written": written if written is not None else "",
                "rejected": entry.get("rejected", ""),
                "seconds": f"{seconds:.1f}" if seconds is not None else "",
                "examples/s": f"{rate:.1f}" if rate else "",
            }
        )
    return rows


def rejection_reasons(manifest: dict[str, Any]) -> dict[str, int]:
    """``stage: reason`` -> count over every stage's ``rejected_by_reason``."""
    reasons = {}
    for name, entry in manifest.get("stages", {}).items():
        for reason, count in (entry.get("rejected_by_reason") or {}).items():
            reasons[f"{name}: {reason}"] = int(count)
    return dict(sorted(reasons.items(), key=lambda kv: -kv[1]))


def rejection_figure(manifest: dict[str, Any]) -> Figure | None:
    """Horizontal bars of rejections by stage and reason; None when nothing was rejected."""
    reasons = rejection_reasons(manifest)
    if not reasons:
        return None
    figure, ax = new_figure(height=max(2.0, 0.45 * len(reasons) + 1.0))
    names = list(reasons)[::-1]
    ax.barh(names, [reasons[n] for n in names], color="tab:red")
    for y, name in enumerate(names):
        ax.annotate(str(reasons[name]), (reasons[name], y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlabel("rejected inputs")
    caption = "Every rejected input has one reason (OUT/rejected/<stage>.csv holds one row per input)."
    return make("rejections", OVERVIEW, "Rejections by stage and reason", caption, figure)


def split_figure(manifest: dict[str, Any]) -> Figure | None:
    """Examples, targets and examples per label of each split (the split stage's manifest entry)."""
    splits = manifest.get("stages", {}).get("split", {}).get("splits")
    if not splits:
        return None
    figure, (left, right) = new_figure(ncols=2)
    names = [s for s in SPLITS if s in splits] or sorted(splits)  # k folds: fold_00, fold_01, ...
    x = np.arange(len(names))
    for offset, key in ((-0.2, "examples"), (0.2, "targets")):
        values = [splits[s].get(key, 0) for s in names]
        bars = left.bar(x + offset, values, width=0.4, label=key)
        left.bar_label(bars, fontsize=8)
    left.set_xticks(x, names)
    left.set_ylabel("count")
    left.legend()
    left.set_title("examples and distinct targets")
    labels = sorted({label for s in names for label in splits[s].get("labels", {})})
    bottom = np.zeros(len(names))
    for label in labels:
        values = np.array([splits[s].get("labels", {}).get(label, 0) for s in names], dtype=float)
        totals = np.array([max(1, splits[s].get("examples", 0)) for s in names], dtype=float)
        right.bar(x, values / totals, bottom=bottom, label=f"label {label}")
        bottom += values / totals
    right.set_xticks(x, names)
    right.set_ylabel("fraction of the split")
    right.legend()
    right.set_title("label balance")
    mode = manifest.get("stages", {}).get("split", {}).get("mode", "hash")
    caption = {
        "kfold": "Folds by target (sha256, or dealt within each label when stratified): a target lies in exactly "
        "one fold; iteration i tests on fold i.",
        "temporal": "Splits by time: a target goes to the split of its earliest example, so the split sizes "
        "follow targets.",
    }.get(mode, "Splits by sha256(target_id): a target lies in exactly one split, so the split sizes follow targets.")
    if mode == "kfold":
        left.tick_params(axis="x", labelrotation=45)
        right.tick_params(axis="x", labelrotation=45)
    return make("splits", OVERVIEW, "Examples, targets and labels per split", caption, figure)


def split_mode_tables(manifest: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(title, rows) of the tables a k-fold split (folds and iterations) or a temporal split (its cuts) adds to
    the overview; none for a hash split."""
    stages = manifest.get("stages", {})
    split = stages.get("split", {})
    if split.get("mode") == "temporal":
        rows = [
            {
                "split": name,
                "starts at": split.get("starts", {}).get(name) if split.get("starts", {}).get(name) is not None else "",
                "examples": entry.get("examples", 0),
                "targets": entry.get("targets", 0),
            }
            for name, entry in split.get("splits", {}).items()
        ]
        rows.append(
            {
                "split": "straddling",
                "starts at": "",
                "examples": split.get("straddling_examples", 0),
                "targets": split.get("straddling_targets", 0),
            }
        )
        return [(f"Temporal split on '{split.get('time_column')}' ({split.get('rule', '')})", rows)]
    if split.get("mode") != "kfold":
        return []
    folds = [
        {
            "fold": name,
            "examples": entry.get("examples", 0),
            "targets": entry.get("targets", 0),
            "positive examples": entry.get("positives", 0),
            "positive targets": entry.get("positive_targets", 0),
        }
        for name, entry in split.get("splits", {}).items()
    ]
    analyzed = stages.get("analyze", {}).get("iterations", {})
    iterations = []
    for it in split.get("iterations", []):
        passes = (analyzed.get(it["name"]) or {}).get("analyzed_examples", {})
        iterations.append(
            {
                "iteration": it["name"],
                "train folds": ", ".join(str(f) for f in it["train"]),
                "val": ", ".join(str(f) for f in it["val"]),
                "test": ", ".join(str(f) for f in it["test"]),
                "statistics from": ", ".join(f"{name}: {seen.get('handed')}" for name, seen in passes.items()),
            }
        )
    title = f"{split.get('k')} folds (stratified: {split.get('stratify')}; rule {split.get('rule')})"
    return [(title, folds), ("Cross-validation iterations", iterations)]


def skew_figure(columns: dict[str, dict[str, np.ndarray]], results: list[SkewResult]) -> Figure | None:
    """Per numeric column, the empirical CDF of each split; titles give the KS statistic (red when flagged)."""
    if not columns:
        return None
    by_column: dict[str, list[SkewResult]] = {}
    for result in results:
        by_column.setdefault(result.column, []).append(result)
    names = list(columns)
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    figure, axes = new_figure(ncols=ncols, nrows=nrows, width=14.0, height=2.8)
    flat = np.atleast_1d(axes).ravel()
    for ax, name in zip(flat, names, strict=False):
        for split, values in columns[name].items():
            if values.size:
                ordered = np.sort(values)
                ax.step(
                    ordered,
                    np.arange(1, ordered.size + 1) / ordered.size,
                    where="post",
                    label=split,
                    color=SPLIT_COLORS.get(split),
                )
        stats = by_column.get(name, [])
        flag = any(r.flagged for r in stats)
        detail = ", ".join(f"{r.split} D={r.statistic:.2f}" for r in stats)
        ax.set_title(f"{name}\n{detail}", fontsize=8, color="tab:red" if flag else "black")
        ax.tick_params(labelsize=7)
    for ax in flat[len(names) :]:
        ax.set_visible(False)
    flat[0].legend(fontsize=7)
    caption = (
        "Empirical CDF per split of every numeric data-table column, one value per target (its examples' mean); "
        "D is the two-sample KS statistic vs train."
    )
    return make("split_cdfs", SKEW, "Distributions per split", caption, figure)
