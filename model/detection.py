"""The trainer's name for :mod:`transforms.evaluation.detection` (moved there so that the matched-filter baseline in
``beam_pipelines`` shares it without importing ``model``); new code imports it from ``transforms``."""

from transforms.evaluation.detection import (
    DEFAULT_FAPS,
    EFFICIENCY_LEVEL,
    efficiency_at_fap,
    fap_key,
    fap_threshold,
    sensitivity_ratio,
    snr_at_efficiency,
)

__all__ = [
    "DEFAULT_FAPS",
    "EFFICIENCY_LEVEL",
    "efficiency_at_fap",
    "fap_key",
    "fap_threshold",
    "sensitivity_ratio",
    "snr_at_efficiency",
]
