"""Light-curve figures of the dataset report (``Recipe.report_figures``).

- transits mode: example in-transit and out-of-transit windows, and the mean window per kind and label;
- views mode: the global and local views (and odd/even local views) of one TCE per label;
- per split: histograms of period, duration and depth, and the counts per disposition and example kind;
- the normalized values per split against N(0, 1).
Examples come from the train split shards (the input of normalize) and the norm shards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transforms.contract import SPLIT_DIR, SPLITS
from transforms.recipes.tce.schema import FLUX_WINDOW, KIND_OOT, KIND_TRANSIT
from transforms.recipes.tce.target import feature_lengths
from transforms.report import data
from transforms.report.figures import SPLIT_COLORS, Figure, make, new_figure, split_histograms

SECTION = "Light curves"
EXAMPLES_PER_KIND = 3
MEAN_EXAMPLES = 200  # train examples averaged in the mean-window figure
HISTOGRAM_EXAMPLES = 200
_PARAMETERS = (("period_days", "period [days]", True), ("duration_hours", "duration [hours]", False))


def _train_rows(out: str, fs: data.ReportFiles) -> list[dict[str, str]]:
    folder = fs.join(out, SPLIT_DIR, "train")
    return data.read_rows(fs, folder) if fs.exists(folder) else []


def _pick(rows: list[dict[str, str]], n: int, **match: str) -> list[str]:
    return [r["uid"] for r in rows if all(r.get(k) == v for k, v in match.items())][:n]


def window_figures(config: Any, out: str, fs: data.ReportFiles) -> list[Figure]:
    """Transits mode: a few in-transit windows per label and out-of-transit windows; the mean window per group."""
    rows = _train_rows(out, fs)
    if not rows:
        return []
    folder = fs.join(out, SPLIT_DIR, "train")
    groups = {
        "in transit, label 1": _pick(rows, EXAMPLES_PER_KIND, kind=KIND_TRANSIT, label="1"),
        "in transit, label 0": _pick(rows, EXAMPLES_PER_KIND, kind=KIND_TRANSIT, label="0"),
        "out of transit": _pick(rows, EXAMPLES_PER_KIND, kind=KIND_OOT),
    }
    groups = {name: uids for name, uids in groups.items() if uids}
    wanted = {uid for uids in groups.values() for uid in uids}
    windows = {uid: data.floats(ex, FLUX_WINDOW) for uid, ex in data.read_examples(fs, folder, wanted)}
    width = config.section.window_durations
    figure, axes = new_figure(ncols=len(groups), width=14.0, height=3.4, sharey=True)
    for ax, (name, uids) in zip(np.atleast_1d(axes), groups.items(), strict=True):
        for uid in uids:
            window = windows.get(uid)
            if window is not None:
                x = np.linspace(-width / 2, width / 2, window.size)
                ax.plot(x, window, ".-", ms=2, lw=0.6, label=uid)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time from mid-transit [durations]")
        ax.legend(fontsize=6)
    np.atleast_1d(axes)[0].set_ylabel("detrended flux - 1")
    caption = "Binned flux windows of the first train examples of each kind (split shards, before normalization)."
    examples = make("tce_windows", SECTION, "Example in-transit and out-of-transit windows", caption, figure)

    mean_groups = {
        "in transit, label 1": _pick(rows, MEAN_EXAMPLES, kind=KIND_TRANSIT, label="1"),
        "in transit, label 0": _pick(rows, MEAN_EXAMPLES, kind=KIND_TRANSIT, label="0"),
        "out of transit": _pick(rows, MEAN_EXAMPLES, kind=KIND_OOT),
    }
    wanted = {uid for uids in mean_groups.values() for uid in uids}
    windows = {uid: data.floats(ex, FLUX_WINDOW) for uid, ex in data.read_examples(fs, folder, wanted)}
    figure, ax = new_figure(height=3.4)
    for name, uids in mean_groups.items():
        stack = [windows[u] for u in uids if u in windows]
        if stack:
            values = np.nanmedian(np.stack(stack), axis=0)
            ax.plot(np.linspace(-width / 2, width / 2, values.size), values, lw=1.5, label=f"{name} ({len(stack)})")
    ax.set_xlabel("time from mid-transit [durations]")
    ax.set_ylabel("median flux - 1")
    ax.legend(fontsize=8)
    caption = f"Median window of up to {MEAN_EXAMPLES} train examples per group: the transit dip is the signal."
    mean = make("tce_mean_window", SECTION, "Median window per kind and label", caption, figure)
    return [examples, mean]


def view_figure(config: Any, out: str, fs: data.ReportFiles) -> list[Figure]:
    """Views mode: every view of the first train TCE of each label."""
    rows = _train_rows(out, fs)
    chosen = data.first_uid_per_label(rows)
    if not chosen:
        return []
    folder = fs.join(out, SPLIT_DIR, "train")
    examples = dict(data.read_examples(fs, folder, set(chosen.values())))
    names = list(feature_lengths(config.section))
    figure, axes = new_figure(ncols=len(names), nrows=len(chosen), width=14.0, height=2.6)
    axes = np.atleast_2d(axes)
    for row, (label, uid) in enumerate(chosen.items()):
        for col, name in enumerate(names):
            if uid in examples:
                axes[row, col].plot(data.floats(examples[uid], name), ".-", ms=2, lw=0.6)
            axes[row, col].set_title(f"{name}, label {label}", fontsize=9)
            axes[row, col].set_xlabel("bin")
    caption = "Phase-folded views (global, local, odd/even local) of the first train TCE of each label."
    return [make("tce_views", SECTION, "Global and local views", caption, figure)]


def parameter_figure(out: str, fs: data.ReportFiles) -> Figure | None:
    """Per-split histograms of period, duration and depth (the first data-table column whose name has 'depth')."""
    columns = data.numeric_columns(data.split_tables(fs, out))
    depth = next((name for name in columns if "depth" in name and "secondary" not in name), None)
    present = [p for p in _PARAMETERS if p[0] in columns]
    if depth is not None:
        present.append((depth, depth, False))
    if not present:
        return None
    figure, axes = new_figure(ncols=len(present), width=14.0, height=3.4)
    for ax, (name, label, log) in zip(np.atleast_1d(axes), present, strict=True):
        per_split = columns[name]
        both = np.concatenate([v for v in per_split.values() if v.size])
        positive = both[both > 0]
        if log and positive.size:
            bins = np.geomspace(positive.min(), positive.max() * 1.001, 30)
            ax.set_xscale("log")
        else:
            bins = np.linspace(both.min(), both.max() + 1e-9, 30)
        split_histograms(ax, per_split, bins)
        ax.set_xlabel(label)
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("density (per example)")
    caption = "Per split, over examples (a TCE with many transit windows counts once per window)."
    return make("tce_parameters", SECTION, "Period, duration and depth per split", caption, figure)


def disposition_figure(out: str, fs: data.ReportFiles) -> Figure | None:
    tables = data.split_tables(fs, out)
    if not tables:
        return None
    figure, axes = new_figure(ncols=2, width=14.0, height=3.4)
    for ax, column in zip(axes, ("disposition", "kind"), strict=True):
        values = sorted({row.get(column, "") for rows in tables.values() for row in rows})
        x = np.arange(len(values))
        width = 0.8 / max(1, len(tables))
        for i, (split, rows) in enumerate(tables.items()):
            counts = [sum(row.get(column, "") == v for row in rows) for v in values]
            bars = ax.bar(
                x + (i - (len(tables) - 1) / 2) * width, counts, width, label=split, color=SPLIT_COLORS.get(split)
            )
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x, values)
        ax.set_title(f"examples per {column}")
        ax.legend(fontsize=8)
    caption = "Examples per disposition (PC, AFP, NTP, ...) and per example kind, per split."
    return make("tce_dispositions", SECTION, "Dispositions and kinds per split", caption, figure)


def value_histogram(config: Any, out: str, fs: data.ReportFiles) -> Figure | None:
    names = list(feature_lengths(config.section))
    figure, axes = new_figure(ncols=len(names), width=14.0, height=3.2)
    bins = np.linspace(-8, 8, 81)
    drawn = False
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        for split in SPLITS:
            folder = data.norm_folder(fs, out, split)
            if not fs.exists(folder):
                continue
            values = [data.floats(ex, name) for _, ex in data.read_examples(fs, folder, limit=HISTOGRAM_EXAMPLES)]
            if values:
                flat = np.clip(np.concatenate(values), bins[0], bins[-1])
                ax.hist(flat, bins=bins, density=True, histtype="step", color=SPLIT_COLORS[split], label=split)
                drawn = True
        ax.plot(bins, np.exp(-0.5 * bins**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
        ax.set_yscale("log")
        ax.set_ylim(bottom=1e-5)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    if not drawn:
        return None
    caption = f"Normalized values of the first {HISTOGRAM_EXAMPLES} examples per split (train z-score, clipped +-8)."
    return make("tce_value_histogram", SECTION, "Normalized values per split", caption, figure)


def report_figures(config: Any, out: str, manifest: dict[str, Any], fs: data.ReportFiles) -> list[Figure]:
    """The light-curve figures that the dataset folder has the inputs for."""
    if FLUX_WINDOW in feature_lengths(config.section):
        figures: list[Figure | None] = [*window_figures(config, out, fs)]
    else:
        figures = [*view_figure(config, out, fs)]
    figures += [parameter_figure(out, fs), disposition_figure(out, fs), value_histogram(config, out, fs)]
    return [figure for figure in figures if figure is not None]
