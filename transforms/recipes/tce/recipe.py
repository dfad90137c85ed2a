"""The light-curve recipe: Kepler/TESS FITS light curves + a TCE table -> transit windows or phase-folded views.

Build: read, detrend with every TCE masked, cut windows or views with target-level masks (this package).
Analyze: one tf.Transform pass that z-scores each view with its train mean and std (``preprocessing.py``),
capped per TCE (``analyze.cap_group_column: tce_uid``, ExoMiner's at most 4 examples per TCE).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from transforms.recipes.base import AnalysisPass, default_check_train_split
from transforms.recipes.tce.config import TceConfig

TCE_UID = "tce_uid"


def tce_params(config: Any):
    """The ``TceParams`` (float features and their lengths) of a dataset config's ``tce`` section."""
    from transforms.recipes.tce.preprocessing import TceParams
    from transforms.recipes.tce.target import feature_lengths

    return TceParams(views=tuple(feature_lengths(config.section).items()))


class TceRecipe:
    """Recipe `tce`; see the module docstring."""

    name = "tce"
    summary = "Kepler/TESS light curves (FITS) + TCE table: per-transit windows or phase-folded views per TCE"
    config_class = TceConfig
    build_transform = "beam_pipelines.recipes.tce.build:BuildTce"
    cap_group_columns = ("target_id", TCE_UID)
    default_trainer_config = "run_configs/train_tce.yaml"
    baselines: dict[str, str] = {}
    serving = None

    def raw_feature_spec(self, config: Any) -> dict[str, Any]:
        from transforms.recipes.tce.preprocessing import tce_raw_feature_spec

        return tce_raw_feature_spec(tce_params(config))

    def analysis_passes(self, config: Any) -> list[AnalysisPass]:
        from transforms.recipes.tce.preprocessing import make_tce_preprocessing_fn

        params = tce_params(config)
        return [AnalysisPass("zscore", lambda _: make_tce_preprocessing_fn(params), params.stat_names)]

    def check_train_split(self, config: Any, train_split: Mapping[str, Any]) -> str | None:
        return default_check_train_split(train_split)

    def stats_files(self, config: Any, stats: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        return {"train_stats.npz": dict(stats)}

    def stats_summary(self, config: Any, stats: dict[str, np.ndarray]) -> dict[str, Any]:
        from transforms.recipes.tce.preprocessing import TCE_STATS_EXAMPLES

        views = [name for name, _ in tce_params(config).views]
        return {
            "cap_group_column": config.analyze.cap_group_column,
            "stats_examples": int(stats[TCE_STATS_EXAMPLES]),
            "view_mean": {name: float(stats[f"{name}_mean"]) for name in views},
            "view_std": {name: float(stats[f"{name}_std"]) for name in views},
        }

    def report_figures(self, config: Any, out: str, manifest: dict[str, Any], fs: Any) -> list[Any]:
        from transforms.recipes.tce.report import report_figures

        return report_figures(config, out, manifest, fs)

    def input_patterns(self, config: Any) -> list[str]:
        """The files the build reads, for ``sigforge audit --inputs``: the FITS glob and the TCE table."""
        return [config.section.fits_glob, config.section.tce_csv]

    def unaccounted_inputs(
        self, config: Any, input_dir: str, fs: Any, written_rows: list[dict], rejected_rows: list[dict]
    ) -> list[str]:
        """The audit's recount of the raw inputs (TCE-table rows, TCEs, light-curve files); see ``recount.py``."""
        from transforms.recipes.tce.recount import unaccounted_inputs

        return unaccounted_inputs(config, input_dir, fs, written_rows, rejected_rows)

    def make_sample(self, out: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
        from transforms.recipes.tce.sample import write_tce_sample

        if options.get("signals_per_source", 1) != 1:
            raise ValueError("--signals-per-source applies to g2net samples only")
        for key, flag in (("priors", "--prior"), ("positive_fraction", "--noise-only"), ("glitches", "--glitch-*")):
            if options.get(key) is not None:
                raise ValueError(f"{flag} applies to g2net samples only")
        return write_tce_sample(out, n_targets=n, seed=seed)


RECIPE = TceRecipe()
