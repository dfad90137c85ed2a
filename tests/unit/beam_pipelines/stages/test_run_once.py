"""`sigforge run` resolves the recipe once and plans the build once, and hands both to the stages."""

from __future__ import annotations

from beam_pipelines.stages.run_all import run_all
from transforms.config import DatasetConfig, load_config
from transforms.recipes import Registry, get_recipe, resolve

_OVERRIDES = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=12",
    "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
]


def test_run_resolves_the_recipe_and_plans_the_build_once(g2net_raw, tmp_path, monkeypatch):
    config = load_config(DatasetConfig, "run_configs/demo.yaml", _OVERRIDES)
    build = resolve(get_recipe(config.recipe).build_transform)
    lookups: list[str] = []
    plans: list[str] = []
    real_lookup, real_plan = Registry.__getitem__, build.plan

    def lookup(self, name):
        lookups.append(name)
        return real_lookup(self, name)

    def plan(cls, config, input_dir):
        plans.append(input_dir)
        return real_plan(config, input_dir)

    monkeypatch.setattr(Registry, "__getitem__", lookup)
    monkeypatch.setattr(build, "plan", classmethod(plan))
    manifest = run_all(config, str(g2net_raw), str(tmp_path / "ds"))
    assert set(manifest["stages"]) >= {"build", "split", "analyze", "normalize"}
    assert lookups == [config.recipe]
    assert plans == [str(g2net_raw)]
