"""``sigforge run``: every stage in order on one dataset folder, each published atomically."""

from __future__ import annotations

import logging
import time
from typing import Any

from beam_pipelines.dataset import fs, ownership
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.dataset.lock import dataset_lock
from beam_pipelines.runtime import dry_run
from beam_pipelines.stages.analyze import check_analyze_config
from beam_pipelines.stages.analyze_folds import run_analyze_stage
from beam_pipelines.stages.build import BuildPlan, plan_build, run_build
from beam_pipelines.stages.filter import check_filter_config
from beam_pipelines.stages.normalize_folds import run_normalize_stage
from beam_pipelines.stages.split import run_split
from transforms.config import DatasetConfig
from transforms.contract import MANIFEST
from transforms.recipes import Recipe, get_recipe

_LOG = logging.getLogger(__name__)


def run_all(
    config: DatasetConfig, input_dir: str, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """build -> split -> analyze -> normalize (-> filter when ``config.filter`` has conditions).

    The recipe is resolved and the build planned once, here, and handed to the stages (split and filter ask the
    recipe nothing). A dry run (Beam's ``--dry_run=True``) builds every stage's pipelines into ``OUT/plans`` in
    one session (later stages see the columns the build planned); it takes no lock and ignores an existing
    dataset."""
    recipe = get_recipe(config.recipe)
    # Fail before any work and before the lock's file: cross-key checks of later stages, and what a cheap look at
    # the inputs decides.
    check_analyze_config(config, recipe)
    check_filter_config(config)
    planned = plan_build(config, input_dir, recipe)
    if dry_run.requested(beam_args):
        with dry_run.session(out):
            return _run_stages(config, recipe, planned, out, beam_args, overwrite)
    ownership.check_no_overlap(out, planned.input_dir)
    ownership.check_folder(out)  # before the lock's file: a folder that is not sigforge's gets nothing
    with dataset_lock(out, "sigforge run"):  # the stages re-take it: one holder for the whole run
        if fs.exists(fs.join(out, MANIFEST)) and not overwrite:
            raise StageError(
                f"{out} already holds a dataset (manifest.json); pass --overwrite to rebuild it", code="output_exists"
            )
        return _run_stages(config, recipe, planned, out, beam_args, overwrite)


def _run_stages(
    config: DatasetConfig,
    recipe: Recipe,
    planned: BuildPlan,
    out: str,
    beam_args: list[str] | None,
    overwrite: bool,
) -> dict[str, Any]:
    input_dir = planned.input_dir
    stages = [
        ("build", lambda: run_build(config, input_dir, out, beam_args, overwrite, recipe=recipe, planned=planned)),
        ("split", lambda: run_split(config, out, beam_args, overwrite=overwrite)),
        ("analyze", lambda: run_analyze_stage(config, out, beam_args, overwrite=overwrite, recipe=recipe)),
        ("normalize", lambda: run_normalize_stage(config, out, beam_args, overwrite=overwrite, recipe=recipe)),
    ]
    if config.filter is not None and config.filter.conditions:
        from beam_pipelines.stages.filter import run_filter

        stages.append(("filter", lambda: run_filter(config, out, beam_args, overwrite=overwrite)))
    result: dict[str, Any] = {}
    started = time.monotonic()
    for index, (name, stage) in enumerate(stages, start=1):
        _LOG.info("[%d/%d] %s ...", index, len(stages), name)
        result = stage()
        entry = result["stages"][name]
        _LOG.debug("[%d/%d] %s done in %.1f s", index, len(stages), name, entry.get("seconds", 0.0))
    if not dry_run.requested(beam_args):
        _LOG.info("run: dataset ready in %s (%.1f s)", out, time.monotonic() - started)
    return result
