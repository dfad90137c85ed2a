"""Build stage: raw inputs -> ``OUT/tfrecords/raw_shard_NNNN-TOTAL.tfrecord`` + data tables + ``OUT/rejected``.

The recipe names its build PTransform (``Recipe.build_transform``, a ``RecipeBuild`` in
``beam_pipelines/recipes/``); this stage plans it on the driver (config errors before any work), runs it, and
records its counts: seen, written, rejected by reason, shards.
"""

from __future__ import annotations

from typing import Any

from beam_pipelines.dataset import fs
from beam_pipelines.io.shards import with_base_columns
from beam_pipelines.stages.runner import StageContext, run_stage
from transforms.config import ConfigError, DatasetConfig
from transforms.contract import RAW_DIR
from transforms.recipes import get_recipe, resolve

STAGE = "build"


def plan_build(config: DatasetConfig, input_dir: str) -> tuple[Any, Any]:
    """The recipe's build class and its driver-side plan: config errors against the inputs (ConfigError naming
    the key) surface here, before any output is touched."""
    build = resolve(get_recipe(config.recipe).build_transform)
    if not fs.exists(input_dir):
        raise ConfigError(f"--input {input_dir} does not exist")
    return build, build.plan(config, input_dir)


def run_build(
    config: DatasetConfig,
    input_dir: str,
    out: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Runs the build stage of ``config.recipe`` from ``input_dir`` into ``out``; returns the updated manifest.

    ``input_dir`` is recorded absolute (``fs.absolute``), so the audit's recount of the raw inputs finds them from
    any working directory."""
    recipe = get_recipe(config.recipe)
    input_dir = fs.absolute(input_dir)
    build, plan = plan_build(config, input_dir)

    def work(ctx: StageContext) -> dict[str, Any]:
        if ctx.plans is not None:  # a dry run: later stages' tables have the columns planned here
            ctx.plans.table_columns = with_base_columns(build.table_columns(plan))
        with ctx.pipeline() as pipeline:
            _ = pipeline | f"Build[{recipe.name}]" >> build(config, input_dir, plan, ctx.tmp, progress=ctx.progress())
        if ctx.plans is not None:
            return {}
        counts = ctx.counts()
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

    return run_stage(STAGE, out, work, beam_args=beam_args, overwrite=overwrite, config=config)
