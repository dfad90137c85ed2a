"""``sigforge run``'s fused stages: build + split in one pipeline, analyze's last pass + normalize in another.

Every pipeline run on the local FnApiRunner pays a fixed cost (building and translating the graph, starting
the worker, running each fused step as its own bundle; more with tf.Transform's analyzer graphs), which dominated
a 4000-example run (issue #13). ``sigforge run`` therefore runs the five stages as fewer pipelines:

- **build + split**: the build's records go to the raw shards *and* straight to the split's ``SplitByTarget``
  (no second read of the raw shards and their tables);
- **analyze + normalize**: the analyze stage's last tf.Transform pass and the normalize stage share one
  pipeline; ``TransformDataset`` takes the pass's ``transform_fn`` as it is written (earlier passes, such as
  strain's PSD pass, still run before it as their own pipelines: the last pass's graph needs their results).

Each stage keeps its own temporary folder, counts, manifest entry, output check and atomic publish
(``runner.run_fused``): nothing is published before the fused pipeline has finished, then the stages are checked
and published in order. The outputs are byte-identical to those of the stages run one by one
(``tests/test_fused.py``); ``sigforge build``, ``split``, ``analyze`` and ``normalize`` still run alone.
"""

from __future__ import annotations

from typing import Any

from beam_pipelines import manifest
from beam_pipelines.stages import analyze, normalize, split
from beam_pipelines.stages.build import build_entry, plan_build
from beam_pipelines.stages.runner import StageContext, StageSpec, run_fused
from transforms.config import DatasetConfig
from transforms.contract import BASE_COLUMNS
from transforms.recipes import get_recipe


def run_build_split(
    config: DatasetConfig, input_dir: str, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """The build and split stages as one pipeline; returns the updated manifest."""
    recipe = get_recipe(config.recipe)
    build, plan = plan_build(config, input_dir)
    # The raw data tables' columns (WriteShards' order), which the split stage would read from their header.
    columns = list(BASE_COLUMNS) + [c for c in build.table_columns(plan) if c not in BASE_COLUMNS]

    def work(contexts: dict[str, StageContext]) -> dict[str, dict[str, Any]]:
        built, splitting = contexts["build"], contexts["split"]
        with built.pipeline() as pipeline:
            _, records = pipeline | f"Build[{recipe.name}]" >> build(
                config, input_dir, plan, built.tmp, progress=built.progress(), with_records=True
            )
            _ = (
                records
                | "SplitByTarget" >> split.split_by_target(splitting, config, columns)
                | "WriteSplitSummary" >> splitting.summary()
            )
        return {
            "build": build_entry(build, config, input_dir, built.counts()),
            "split": split.split_entry(config, splitting.counts()),
        }

    specs = [StageSpec("build", config=config), StageSpec("split")]
    return run_fused(specs, out, work, beam_args=beam_args, overwrite=overwrite)


def run_analyze_normalize(
    config: DatasetConfig, out: str, beam_args: list[str] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """The analyze stage, its last pass in one pipeline with the normalize stage; returns the updated manifest."""
    plan = analyze.plan_analyze(config, out)
    split_written = manifest.read_manifest(out).get("stages", {}).get("split", {}).get("written") or 0

    def work(contexts: dict[str, StageContext]) -> dict[str, dict[str, Any]]:
        analyzing, normalizing = contexts["analyze"], contexts["normalize"]

        def extend(pipeline, transform_fn) -> None:
            # progress of both stages is reported by the analyze pipeline's monitor (one folder)
            steps = normalize.normalize_splits(normalizing, config, out, transform_fn, analyzing.progress())
            _ = pipeline | "NormalizeSplits" >> steps | "WriteNormalizeSummary" >> normalizing.summary()

        entry = analyze.analyze_work(plan, analyzing, extend=extend, extra_total=split_written)
        return {"analyze": entry, "normalize": normalize.normalize_entry(normalizing.counts())}

    specs = [
        StageSpec("analyze", requires="split", check=analyze.check_stats),
        StageSpec("normalize", check=normalize.check_normalized),
    ]
    return run_fused(specs, out, work, beam_args=beam_args, overwrite=overwrite)
