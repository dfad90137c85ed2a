"""The G2Net strain recipe: ``.npy`` strain (3 detectors x 4096 samples at 2048 Hz) + labels CSV.

Build: validate and bandpass each example (``strain.py``). Analyze: two streaming tf.Transform passes, the
average noise PSD and then the whitened per-channel moments with that PSD as a graph constant
(``preprocessing.py``). Sample data: ``sample.py``; predict: ``G2NetServing``; baseline: the matched filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from transforms.contract import RAW_DTYPE, STRAIN, sample_id
from transforms.recipes.base import AnalysisPass, default_check_train_split
from transforms.recipes.g2net.config import G2NetConfig

PSD_PASS_STATS = ("avg_psd", "psd_examples")


def strain_params(config: Any):
    """The ``StrainParams`` of a dataset config's ``g2net`` section."""
    from transforms.recipes.g2net.preprocessing import StrainParams

    section: G2NetConfig = config.section
    return StrainParams(
        fs=section.sample_rate_hz,
        n_channels=section.n_channels,
        n_samples=section.n_samples,
        band=(section.bandpass.low_hz, section.bandpass.high_hz),
        tukey_alpha=section.tukey_alpha,
        psd_labels=tuple(section.psd_labels),
    )


class G2NetServing:
    """Predict step: raw ``.npy`` bytes -> validated, bandpassed raw example (as the build stage writes it).

    At serve time the group and label are unknown: ``target_id`` is the id and ``label`` 0, which the transform
    graph only passes through.
    """

    input_suffix = ".npy"

    def example_id(self, path: str) -> str:
        return sample_id(path, self.input_suffix)

    def serve_examples(self, config: Any, items: list[tuple[str, bytes]]) -> list[bytes | Exception]:
        from transforms.contract import encode_example
        from transforms.recipes.g2net.strain import preprocess_for_build

        results = preprocess_for_build([data for _, data in items], config.section)
        return [
            result if isinstance(result, Exception) else encode_example(uid, uid, 0, {STRAIN: result})
            for (uid, _), result in zip(items, results, strict=True)
        ]

    def describe(self, config: Any) -> str:
        band = config.section.bandpass
        return f"bandpass {band.low_hz}-{band.high_hz} Hz order {band.order}"


class G2NetRecipe:
    """Recipe `g2net`; see the module docstring."""

    name = "g2net"
    summary = "G2Net gravitational-wave strain: .npy (detectors x samples) + labels CSV; bandpass, PSD whitening"
    config_class = G2NetConfig
    build_transform = "beam_pipelines.recipes.g2net.build:BuildG2Net"
    cap_group_columns = ("target_id",)
    default_trainer_config = "run_configs/train_g2net.yaml"
    baselines = {"matched-filter": "beam_pipelines.recipes.g2net.baseline"}
    serving = G2NetServing()

    def raw_feature_spec(self, config: Any) -> dict[str, Any]:
        from transforms.recipes.g2net.preprocessing import raw_feature_spec

        return raw_feature_spec()

    def analysis_passes(self, config: Any) -> list[AnalysisPass]:
        """Two streaming passes instead of one two-phase analysis: tf.Transform would hold the whole train split
        between its phases (the whitening needs the finished PSD); re-reading it keeps memory flat."""
        from transforms.recipes.g2net import preprocessing

        params = strain_params(config)
        return [
            AnalysisPass("psd", lambda _: preprocessing.make_psd_fn(params), PSD_PASS_STATS),
            AnalysisPass(
                "moments", lambda psd: preprocessing.make_preprocessing_fn(params, psd), preprocessing.STAT_NAMES
            ),
        ]

    def check_train_split(self, config: Any, train_split: Mapping[str, Any]) -> str | None:
        psd_labels = {str(label) for label in config.section.psd_labels}
        if not any(train_split.get("labels", {}).get(label, 0) for label in psd_labels):
            return (
                f"the train split has no example with a label in g2net.psd_labels={sorted(psd_labels)} "
                "(needed for the average noise PSD); check the split fractions or the labels"
            )
        return default_check_train_split(train_split)

    def stats_files(self, config: Any, stats: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        params = strain_params(config)
        freqs = np.fft.rfftfreq(params.n_samples, 1.0 / params.fs)
        return {
            "avg_psd.npz": {"psd": stats["avg_psd"], "freqs": freqs, "fs": np.float64(params.fs)},
            "train_stats.npz": {"freqs": freqs, **stats},
        }

    def stats_summary(self, config: Any, stats: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "psd_examples": int(stats["psd_examples"]),
            "channel_mean": stats["channel_mean"].tolist(),
            "channel_std": stats["channel_std"].tolist(),
        }

    def report_figures(self, config: Any, out: str, manifest: dict[str, Any], fs: Any) -> list[Any]:
        from transforms.recipes.g2net.report import report_figures

        return report_figures(config, out, manifest, fs)

    def example_scale(self, config: Any, serialized: bytes) -> float | None:
        """The std of one raw example's bandpassed strain (all channels), for the analyze outlier guard."""
        from transforms.contract import decode_example

        data = decode_example(serialized).features.feature[STRAIN].bytes_list.value
        if not data:
            return None
        return float(np.frombuffer(data[0], dtype=RAW_DTYPE).astype(np.float64).std())

    def input_patterns(self, config: Any) -> list[str]:
        """The files the build reads, for ``sigforge audit --inputs``: the ``.npy`` glob and the CSVs (relative to
        the input folder, or absolute)."""
        section: G2NetConfig = config.section
        return [section.npy_glob, section.labels_csv, *([section.truth_csv] if section.truth_csv else [])]

    def input_ids(self, config: Any, input_dir: str, fs: Any) -> list[str]:
        """The id of every raw input, recounted by the audit: each ``.npy`` matched by ``g2net.npy_glob``, each
        folder below it that could not be listed or followed (by its path), and each well-formed row of the labels
        CSV (a malformed row has no reliable id; the build rejects it as such)."""
        from transforms.audit_inputs import match_inputs
        from transforms.contract import RejectedInput
        from transforms.csv_rows import data_lines, decode_csv_line, header_record, parse_csv_line, parse_header

        section: G2NetConfig = config.section
        paths, unlisted = match_inputs(fs, input_dir, section.npy_glob)
        ids = [sample_id(path) for path in paths] + unlisted  # a folder not listed is a rejection by its path
        from transforms.paths import input_file

        path = input_file(input_dir, section.labels_csv, "g2net.labels_csv")
        if not fs.exists(path):
            return ids
        data = fs.read_bytes(path)
        try:
            header = parse_header(header_record(data))  # a byte-order mark is not part of the name
        except UnicodeDecodeError:
            return ids
        if section.id_column not in header:
            return ids
        for raw in data_lines(data):  # the build's records (RFC 4180)
            try:
                uid = parse_csv_line(decode_csv_line(raw), header)[section.id_column].strip()
            except RejectedInput:
                continue  # rejected by the build as a malformed or undecodable row, without an id
            if uid:
                ids.append(uid)
        return ids

    def make_sample(self, out: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
        from dataclasses import fields

        from transforms.recipes.g2net.priors import SampleSpec
        from transforms.recipes.g2net.sample import write_g2net_sample

        priors = dict(options.get("priors") or {})
        known = {f.name for f in fields(SampleSpec)}
        if unknown := sorted(set(priors) - known):
            raise ValueError(f"unknown g2net prior(s) {unknown}; known: {sorted(known)}")
        priors = {k: tuple(v) if isinstance(v, list) else v for k, v in priors.items()}
        per_source = options.get("signals_per_source", 1)
        extra: dict[str, Any] = {}
        if "positive_fraction" in options:
            extra["positive_fraction"] = float(options["positive_fraction"])
        if options.get("glitches"):
            from transforms.recipes.g2net.glitches import GlitchSpec

            extra["glitches"] = GlitchSpec(**options["glitches"])
        return write_g2net_sample(out, n=n, seed=seed, signals_per_source=per_source, **extra, **priors)


RECIPE = G2NetRecipe()
