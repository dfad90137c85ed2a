"""Build stage: raw inputs -> ``OUT/tfrecords/raw_shard_NNNN-TOTAL.tfrecord`` + data tables + ``OUT/rejected``.

The recipe names its build PTransform (``Recipe.build_transform``, a ``RecipeBuild`` in
``beam_pipelines/recipes/``); this stage plans it on the driver (config errors before any work), runs it, and
records its counts: seen, written, rejected by reason, shards, and (when the recipe records it) the digest of
its input set (manifest key ``inputs``, from ``OUT/provenance/inputs.csv``; transforms/provenance.py).

A build that writes no example is published (manifest entry, ``OUT/rejected/build.csv`` with every reason, empty
tables) so that its rejections can be read, and then refused: ``run_build`` raises StageError(code
``empty_build``) with one line naming the top rejection reasons, so ``sigforge build`` exits 2 and ``sigforge
run`` stops before split; a later ``sigforge split`` on that folder is refused with the same line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.io.tables import with_base_columns
from beam_pipelines.runtime import dry_run
from beam_pipelines.stages.runner import StageContext, run_stage
from transforms import provenance
from transforms.config import ConfigError, DatasetConfig
from transforms.contract import RAW_DIR, REJECTED_DIR
from transforms.csv_cells import restore_cell, restore_row
from transforms.recipes import Recipe, get_recipe, resolve

STAGE = "build"
EMPTY_BUILD = "empty_build"  # StageError code of a build that wrote no example
_SHOWN_REASONS = 3
_DETAIL_CHARS = 500


@dataclass(frozen=True)
class BuildPlan:
    """The recipe's build class (a ``RecipeBuild``) and its driver-side plan for the inputs in ``input_dir``
    (absolute): what ``plan_build`` found, handed on to ``run_build`` so a run plans once."""

    input_dir: str
    build: Any
    plan: Any


def plan_build(config: DatasetConfig, input_dir: str, recipe: Recipe | None = None) -> BuildPlan:
    """The recipe's build class and its driver-side plan: config errors against the inputs (ConfigError naming
    the key) surface here, before any output is touched. ``recipe`` is ``config.recipe``'s, looked up when not
    given."""
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    input_dir = fs.absolute(input_dir)
    build = resolve(recipe.build_transform)
    if not fs.exists(input_dir):
        raise ConfigError(f"--input {input_dir} does not exist")
    return BuildPlan(input_dir, build, build.plan(config, input_dir))


def run_build(
    config: DatasetConfig,
    input_dir: str,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    *,
    recipe: Recipe | None = None,
    planned: BuildPlan | None = None,
) -> dict[str, Any]:
    """Runs the build stage of ``config.recipe`` from ``input_dir`` into ``out``; returns the updated manifest.

    ``input_dir`` is recorded absolute (``fs.absolute``), so the audit's recount of the raw inputs finds them from
    any working directory. ``sigforge run`` passes the ``recipe`` it resolved and the ``planned`` build it
    checked before taking the lock; alone, the stage resolves and plans them itself."""
    recipe = recipe if recipe is not None else get_recipe(config.recipe)
    input_dir = fs.absolute(input_dir)
    if planned is None:
        planned = plan_build(config, input_dir, recipe)
    elif planned.input_dir != input_dir:
        raise ValueError(f"run_build: the plan is for {planned.input_dir}, not {input_dir}")
    build, plan = planned.build, planned.plan

    def work(ctx: StageContext) -> dict[str, Any]:
        if ctx.plans is not None:  # a dry run: later stages' tables have the columns planned here
            ctx.plans.table_columns = with_base_columns(build.table_columns(plan))
        with ctx.pipeline() as pipeline:
            _ = pipeline | f"Build[{recipe.name}]" >> build(config, input_dir, plan, ctx.tmp, progress=ctx.progress())
        if ctx.plans is not None:
            return {}
        counts = ctx.counts()
        inputs_csv = ctx.tmp_path(provenance.INPUTS_CSV)
        if fs.exists(inputs_csv):  # the recipe recorded its input set: its digest goes to the manifest
            digests = provenance.parse_inputs(fs.read_text(inputs_csv)).values()
            ctx.manifest_keys[provenance.INPUTS_KEY] = provenance.input_set(digests)
        return {
            "seen": counts["seen"],
            "written": counts["written"],
            "rejected": counts["rejected"],
            "rejected_by_reason": counts.under("rejected/"),
            "num_shards": counts["num_shards"],
            **build.summary_extras(config, counts),
            "input_dir": input_dir,
            "shard_dir": RAW_DIR,
        }

    result = run_stage(STAGE, out, work, beam_args=beam_args, overwrite=overwrite, config=config, input_dir=input_dir)
    if not dry_run.requested(beam_args):  # a dry run builds the pipeline and writes nothing to count
        check_not_empty(out, result["stages"][STAGE])
    return result


def check_not_empty(out: str, build: Mapping[str, Any]) -> None:
    """StageError(code ``empty_build``) when the build recorded in ``build`` (its manifest entry) wrote nothing:
    one line with the top rejection reasons and counts, one rejection's detail, and where all of them are."""
    if build.get("written", 0):
        return
    reasons = sorted(build.get("rejected_by_reason", {}).items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{reason} {n}" for reason, n in reasons[:_SHOWN_REASONS])
    if len(reasons) > _SHOWN_REASONS:
        shown += f", {len(reasons) - _SHOWN_REASONS} more reasons"
    rejected_csv = fs.join(out, REJECTED_DIR, f"{STAGE}.csv")
    message = f"build wrote 0 examples of {build.get('seen', 0)} seen ({shown or 'nothing was rejected: no input'})"
    example = _first_rejection(rejected_csv, reasons[0][0]) if reasons else None
    if example is not None:
        message += f"; e.g. {example['uid_or_path']}: {example['detail'][:_DETAIL_CHARS]}"
    if reasons:
        message += f"; every rejection is in {rejected_csv}"
    message += "; later stages were not run (fix the inputs or the config, then rerun with --overwrite)"
    raise StageError(message, code=EMPTY_BUILD)


def _first_rejection(path: str, reason: str) -> dict[str, str] | None:
    """The first row of the rejections CSV ``path`` with ``reason`` (None if the file cannot be read)."""
    try:
        with fs.open_read(path) as handle:
            rows = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
            return next((restore_row(row) for row in rows if restore_cell(row.get("reason") or "") == reason), None)
    except (OSError, ValueError):
        return None
