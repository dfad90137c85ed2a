"""G2Net figures of the dataset report (``Recipe.report_figures``): PSD, whitening, value and truth distributions.

- the train average PSD per detector (``OUT/stats/avg_psd.npz``) with the detector's design curve;
- one train example per class before (split shard: bandpassed strain) and after (norm shard: whitened and
  standardized) normalization, in time and in frequency;
- the histogram of normalized strain values per split (the first examples of each split), against N(0, 1);
- per-split histograms of the injection truth (SNR, chirp mass) when the data tables carry it (``truth_csv``).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from transforms.contract import SPLIT_DIR, SPLITS, STATS_DIR, STRAIN
from transforms.recipes.g2net.detectors import NETWORK
from transforms.recipes.g2net.psd_models import detector_psd
from transforms.report import data
from transforms.report.figures import SPLIT_COLORS, Figure, make, new_figure, split_histograms

SECTION = "G2Net strain"
HISTOGRAM_EXAMPLES = 24  # examples per split in the value histogram
TRUTH_COLUMNS = (("snr", "network SNR"), ("chirp_mass", "chirp mass [M_sun]"))


def _shape(config: Any) -> tuple[int, int]:
    return config.section.n_channels, config.section.n_samples


def psd_figure(config: Any, out: str, fs: data.ReportFiles) -> Figure | None:
    path = fs.join(out, STATS_DIR, "avg_psd.npz")
    if not fs.exists(path):
        return None
    stats = np.load(io.BytesIO(fs.read_bytes(path)))
    psd, freqs = stats["psd"], stats["freqs"]
    band = (config.section.bandpass.low_hz, config.section.bandpass.high_hz)
    figure, axes = new_figure(ncols=len(psd), width=14.0, height=3.8)
    for ax, detector, row in zip(np.atleast_1d(axes), NETWORK, psd, strict=False):
        keep = freqs > 0
        ax.loglog(freqs[keep], np.sqrt(row[keep]), label="train average (bandpassed, Tukey)")
        design = detector_psd(detector, config.section.n_samples, config.section.sample_rate_hz)
        ax.loglog(freqs[keep], np.sqrt(design[keep]), "k--", lw=1, label="design curve")
        ax.axvspan(*band, color="0.9", zorder=0, label="bandpass")
        ax.set_title(detector)
        ax.set_xlabel("frequency [Hz]")
    np.atleast_1d(axes)[0].set_ylabel("ASD [1/sqrt(Hz)]")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    caption = (
        "Square root of the average noise PSD over the train split's noise-only examples (the whitening reference, "
        "OUT/stats/avg_psd.npz), against each detector's design curve (aLIGO for H1/L1, AdVirgo for V1)."
    )
    return make("g2net_avg_psd", SECTION, "Train average PSD per detector", caption, figure)


def _examples_per_class(config: Any, out: str, fs: data.ReportFiles) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (bandpassed strain, normalized strain) of the first train example of that label."""
    shape = _shape(config)
    raw_folder, norm_folder = fs.join(out, SPLIT_DIR, "train"), data.norm_folder(fs, out, "train")
    if not (fs.exists(raw_folder) and fs.exists(norm_folder)):
        return {}
    chosen = data.first_uid_per_label(data.read_rows(fs, raw_folder))
    uids = set(chosen.values())
    raw = {uid: data.floats(ex, STRAIN).reshape(shape) for uid, ex in data.read_examples(fs, raw_folder, uids)}
    norm = {uid: data.floats(ex, STRAIN).reshape(shape) for uid, ex in data.read_examples(fs, norm_folder, uids)}
    return {label: (raw[uid], norm[uid]) for label, uid in chosen.items() if uid in raw and uid in norm}


def whitening_figures(config: Any, out: str, fs: data.ReportFiles) -> list[Figure]:
    pairs = _examples_per_class(config, out, fs)
    if not pairs:
        return []
    rate = float(config.section.sample_rate_hz)
    time_fig, time_axes = new_figure(ncols=2, nrows=len(pairs), width=14.0, height=2.6)
    freq_fig, freq_axes = new_figure(ncols=2, nrows=len(pairs), width=14.0, height=2.6)
    time_axes, freq_axes = np.atleast_2d(time_axes), np.atleast_2d(freq_axes)
    for row, (label, (raw, norm)) in enumerate(pairs.items()):
        t = np.arange(raw.shape[1]) / rate
        f = np.fft.rfftfreq(raw.shape[1], 1.0 / rate)
        for col, (what, strain) in enumerate((("before (bandpassed)", raw), ("after (whitened, standardized)", norm))):
            for channel, detector in enumerate(NETWORK[: strain.shape[0]]):
                time_axes[row, col].plot(t, strain[channel], lw=0.5, label=detector)
                amplitude = np.abs(np.fft.rfft(strain[channel].astype(np.float64)))
                freq_axes[row, col].loglog(f[1:], amplitude[1:], lw=0.5, label=detector)
            time_axes[row, col].set_title(f"label {label}, {what}", fontsize=9)
            freq_axes[row, col].set_title(f"label {label}, {what}", fontsize=9)
        time_axes[row, 0].legend(fontsize=7, loc="upper right")
    time_axes[-1, 0].set_xlabel("time [s]")
    time_axes[-1, 1].set_xlabel("time [s]")
    freq_axes[-1, 0].set_xlabel("frequency [Hz]")
    freq_axes[-1, 1].set_xlabel("frequency [Hz]")
    caption = "The first train example of each label: the split shard (input of normalize) and the norm shard."
    return [
        make("g2net_whitening_time", SECTION, "One example per class, time domain", caption, time_fig),
        make("g2net_whitening_freq", SECTION, "One example per class, |FFT|", caption, freq_fig),
    ]


def value_histogram(config: Any, out: str, fs: data.ReportFiles) -> Figure | None:
    figure, ax = new_figure(height=3.6)
    bins = np.linspace(-6, 6, 121)
    drawn = False
    for split in SPLITS:
        folder = data.norm_folder(fs, out, split)
        if not fs.exists(folder):
            continue
        values = [data.floats(ex, STRAIN) for _, ex in data.read_examples(fs, folder, limit=HISTOGRAM_EXAMPLES)]
        if not values:
            continue
        flat = np.concatenate(values)
        ax.hist(
            np.clip(flat, bins[0], bins[-1]),
            bins=bins,
            density=True,
            histtype="step",
            lw=1.2,
            color=SPLIT_COLORS[split],
            label=f"{split} ({len(values)} examples)",
        )
        drawn = True
    if not drawn:
        return None
    ax.plot(bins, np.exp(-0.5 * bins**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-5)
    ax.set_xlabel("normalized strain (clipped to +-6)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    caption = f"Values of the first {HISTOGRAM_EXAMPLES} normalized examples of each split; train statistics only."
    return make("g2net_value_histogram", SECTION, "Normalized strain values per split", caption, figure)


def truth_figure(out: str, fs: data.ReportFiles) -> Figure | None:
    columns = data.numeric_columns(data.split_tables(fs, out))
    present = [(name, label) for name, label in TRUTH_COLUMNS if name in columns]
    if not present:
        return None
    figure, axes = new_figure(ncols=len(present), width=14.0, height=3.4)
    for ax, (name, label) in zip(np.atleast_1d(axes), present, strict=True):
        per_split = {s: v[v > 0] for s, v in columns[name].items()}  # noise examples carry 0 / no value
        both = np.concatenate([v for v in per_split.values() if v.size])
        bins = np.linspace(both.min(), both.max(), 30) if both.size else 10
        split_histograms(ax, per_split, bins)
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    caption = "Injection truth of the signal examples (label 1), per split, from the data tables (g2net.truth_csv)."
    return make("g2net_truth", SECTION, "Signal SNR and chirp mass per split", caption, figure)


def report_figures(config: Any, out: str, manifest: dict[str, Any], fs: data.ReportFiles) -> list[Figure]:
    """The G2Net figures that the dataset folder has the inputs for."""
    figures = [psd_figure(config, out, fs), *whitening_figures(config, out, fs), value_histogram(config, out, fs)]
    figures.append(truth_figure(out, fs))
    return [figure for figure in figures if figure is not None]
