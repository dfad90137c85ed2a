"""The recipe registry: built-ins listed, unknown recipes refused, and a toy third recipe run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines.commands import cli
from transforms.config import ConfigError, DatasetConfig, load_config, validate
from transforms.contract import decode_example
from transforms.recipes import REGISTRY, Recipe, get_recipe


def test_builtin_recipes_are_registered_and_satisfy_the_protocol():
    assert {"g2net", "tce"} <= set(REGISTRY)
    for name in ("g2net", "tce"):
        recipe = get_recipe(name)
        assert isinstance(recipe, Recipe) and recipe.name == name and recipe.summary


def test_recipes_command_lists_every_recipe(capsys):
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(REGISTRY)


def test_unknown_recipe_refused_with_suggestion():
    with pytest.raises(ConfigError) as info:
        validate(DatasetConfig, {"recipe": "tcee"})
    assert info.value.code == "config" and "'recipe'" in str(info.value) and "'tce'" in str(info.value)


def test_recipe_section_follows_recipe():
    tce = validate(DatasetConfig, {"recipe": "tce"})
    assert type(tce).__name__ == "DatasetConfig_tce" and tce.section.mode == "transits"
    assert "g2net" not in tce.model_dump()  # a TCE manifest records no G2Net bandpass
    with pytest.raises(ConfigError) as info:
        validate(DatasetConfig, {"recipe": "tce", "g2net": {}})
    assert info.value.code == "unknown_key" and "'g2net'" in str(info.value)


def test_cap_group_column_must_be_a_feature_of_the_recipe(tmp_path):
    code = cli.main(
        ["run", "--config", "run_configs/g2net.yaml", "--input", str(tmp_path), "--output", str(tmp_path / "ds")]
        + ["--set", "analyze.cap_group_column=tce_uid"]
    )
    assert code == 2 and not (tmp_path / "ds").exists()


@pytest.fixture
def toy_recipe():
    from tests.support import toy_recipe

    REGISTRY.register(toy_recipe.RECIPE)
    yield toy_recipe
    REGISTRY.unregister("toy")


def test_toy_recipe_runs_end_to_end_without_touching_a_stage(tmp_path, toy_recipe):
    raw, out = tmp_path / "raw", tmp_path / "ds"
    assert cli.main(["make-sample", "toy", str(raw), "--n", "60", "--seed", "1"]) == 0
    config = tmp_path / "toy.yaml"
    config.write_text("name: toy\nrecipe: toy\ntoy: {length: 8}\nbuild: {examples_per_shard: 16}\n")
    assert load_config(DatasetConfig, str(config)).section.length == 8
    assert cli.main(["run", "--config", str(config), "--input", str(raw), "--output", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    build = manifest["stages"]["build"]
    assert (build["seen"], build["written"], build["rejected"]) == (60, 59, 1)
    assert build["rejected_by_reason"] == {"non_finite": 1}
    assert manifest["config"]["toy"] == {"csv": "series.csv", "length": 8}
    assert set(manifest["stages"]) == {"build", "split", "analyze", "normalize"}
    assert manifest["stages"]["normalize"]["written"] == 59

    values = []
    for split in ("train", "val", "test"):
        for shard in sorted((out / "norm" / split).glob(f"norm_{split}_shard_*.tfrecord")):
            for record in tf.data.TFRecordDataset(str(shard)):
                feature = decode_example(record.numpy()).features.feature
                values.append((split, np.array(feature["series"].float_list.value)))
    assert len(values) == 59
    train = np.concatenate([v for s, v in values if s == "train"])
    assert abs(train.mean()) < 1e-5 and abs(train.std() - 1.0) < 1e-4  # z-scored with the train statistics
    stats = manifest["stages"]["analyze"]
    assert stats["series_std"] > 0 and np.isfinite(stats["series_mean"])
    assert cli.main(["audit", str(out)]) == 0
