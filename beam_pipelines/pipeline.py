"""``sigforge run``: every stage in order on one dataset folder, each published atomically; build + split and
analyze + normalize each run as one pipeline (``stages/fused.py``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from beam_pipelines import fs, manifest
from beam_pipelines.lock import dataset_lock
from beam_pipelines.stages.analyze import check_analyze_config
from beam_pipelines.stages.build import plan_build
from beam_pipelines.stages.fused import run_analyze_normalize, run_build_split
from transforms.config import DatasetConfig
from transforms.contract import MANIFEST

_LOG = logging.getLogger(__name__)


def run_all(
    config: DatasetConfig, input_dir: str, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """build -> split -> analyze -> normalize (-> filter when ``config.filter`` has conditions)."""
    check_analyze_config(config)  # cross-key checks of later stages fail before any work
    plan_build(config, input_dir)  # and those decidable from a cheap look at the inputs, before the lock's file
    with dataset_lock(out, "sigforge run"):  # the stages re-take it: one holder for the whole run
        if fs.exists(fs.join(out, MANIFEST)) and not overwrite:
            raise manifest.StageError(f"{out} already holds a dataset (manifest.json); pass --overwrite to rebuild it")
        return _run_stages(config, input_dir, out, beam_args, overwrite)


def _run_stages(
    config: DatasetConfig, input_dir: str, out: str, beam_args: list[str] | None, overwrite: bool
) -> dict[str, Any]:
    # Fused where the atomic publish allows (beam_pipelines/stages/fused.py): 2 pipelines do the work of 4 stages.
    steps = [
        (("build", "split"), lambda: run_build_split(config, input_dir, out, beam_args, overwrite=overwrite)),
        (("analyze", "normalize"), lambda: run_analyze_normalize(config, out, beam_args, overwrite=overwrite)),
    ]
    if config.filter is not None and config.filter.conditions:
        from beam_pipelines.stages.filter import run_filter

        steps.append((("filter",), lambda: run_filter(config, out, beam_args, overwrite=overwrite)))
    total = sum(len(names) for names, _ in steps)
    result: dict[str, Any] = {}
    started = time.monotonic()
    first = 1
    for names, step in steps:
        last = first + len(names) - 1
        position = f"{first}/{total}" if first == last else f"{first}-{last}/{total}"
        _LOG.info("[%s] %s ...", position, " + ".join(names))
        result = step()
        seconds = sum(result["stages"][name].get("seconds", 0.0) for name in names)
        _LOG.debug("[%s] %s done in %.1f s", position, " + ".join(names), seconds)
        first = last + 1
    _LOG.info("run: dataset ready in %s (%.1f s)", out, time.monotonic() - started)
    return result
