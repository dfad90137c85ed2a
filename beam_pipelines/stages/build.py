"""Build stage: raw inputs -> ``OUT/tfrecords/raw_shard_NNNN-TOTAL.tfrecord`` + data tables + ``OUT/rejected``.

The recipe names its build PTransform (``Recipe.build_transform``, a ``RecipeBuild`` in
``beam_pipelines/recipes/``); this stage plans it on the driver (config errors before any work), runs it, and
records its counts: seen, written, rejected by reason, shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beam_pipelines.dataset import fs
from beam_pipelines.stages.runner import StageContext, run_stage
from transforms.config import ConfigError, DatasetConfig
from transforms.contract import RAW_DIR
from transforms.recipes import Recipe, get_recipe, resolve

STAGE = "build"


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
        with ctx.pipeline() as pipeline:
            _ = pipeline | f"Build[{recipe.name}]" >> build(config, input_dir, plan, ctx.tmp, progress=ctx.progress())
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
