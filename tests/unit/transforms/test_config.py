"""Config schema: every shipped YAML validates; bad keys, types and fractions are refused naming the key."""

from __future__ import annotations

import glob

import pytest

from transforms.config import ConfigError, DatasetConfig, apply_overrides, load_config, parse_override

DATASET_CONFIGS = ["run_configs/g2net.yaml", "run_configs/demo.yaml"]


@pytest.mark.parametrize("path", DATASET_CONFIGS)
def test_shipped_dataset_configs_validate(path):
    config = load_config(DatasetConfig, path)
    assert abs(sum(config.split.fractions.values()) - 1.0) < 1e-9


def test_demo_extends_g2net():
    demo = load_config(DatasetConfig, "run_configs/demo.yaml")
    base = load_config(DatasetConfig, "run_configs/g2net.yaml")
    assert demo.g2net.group_column == "source_id" and base.g2net.group_column == "id"
    assert demo.g2net.bandpass == base.g2net.bandpass


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_misspelled_key_is_named_with_suggestion(tmp_path):
    path = _write(tmp_path, "g2net:\n  bandpas: {low_hz: 20}\n")
    with pytest.raises(ConfigError) as info:
        load_config(DatasetConfig, path)
    assert "g2net.bandpas" in str(info.value) and "did you mean 'bandpass'" in str(info.value)


def test_unknown_nested_key_is_named(tmp_path):
    path = _write(tmp_path, "g2net:\n  bandpass: {low_hz: 20, hihg_hz: 400}\n")
    with pytest.raises(ConfigError, match=r"g2net\.bandpass\.hihg_hz.*did you mean 'high_hz'"):
        load_config(DatasetConfig, path)


def test_wrong_type_is_named(tmp_path):
    path = _write(tmp_path, "build:\n  examples_per_shard: lots\n")
    with pytest.raises(ConfigError, match="build.examples_per_shard"):
        load_config(DatasetConfig, path)


def test_fractions_must_sum_to_one():
    with pytest.raises(ConfigError, match=r"split\.fractions.*sum to 1"):
        load_config(DatasetConfig, "run_configs/g2net.yaml", ["split.fractions={train: 0.8, val: 0.1, test: 0.2}"])


def test_bandpass_order_checked():
    with pytest.raises(ConfigError, match="g2net.bandpass"):
        load_config(DatasetConfig, "run_configs/g2net.yaml", ["g2net.bandpass.low_hz=600"])


def test_set_overrides_any_key_and_is_validated():
    config = load_config(DatasetConfig, "run_configs/g2net.yaml", ["g2net.bandpass.high_hz=400", "name=x"])
    assert config.g2net.bandpass.high_hz == 400 and config.name == "x"
    with pytest.raises(ConfigError, match="split.salty"):
        load_config(DatasetConfig, "run_configs/g2net.yaml", ["split.salty=1"])


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=null") == (["a"], None)
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_missing_config_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(DatasetConfig, str(tmp_path / "nope.yaml"))


RUNNER_PROFILES = {"local", "local_multiprocess", "portable", "dataflow", "flink"}


def test_every_yaml_in_run_configs_validates_against_its_schema():
    """Recipes against DatasetConfig, trainer configs against TrainerConfig, runner profiles against theirs."""
    from beam_pipelines.runtime.options import load_profile
    from model.config import load_trainer_config

    paths = sorted(glob.glob("run_configs/*.yaml"))
    assert set(DATASET_CONFIGS) <= set(paths)
    kinds = {"dataset": 0, "trainer": 0, "profile": 0}
    for path in paths:
        name = path.rsplit("/", 1)[1].removesuffix(".yaml")
        if name.startswith("train_"):
            load_trainer_config(path)
            kinds["trainer"] += 1
        elif name in RUNNER_PROFILES:
            try:
                load_profile(path)
            except ConfigError as error:  # dataflow/flink ship CHANGE_ME placeholders, refused until filled in
                assert "CHANGE_ME" in str(error), path
            kinds["profile"] += 1
        else:
            load_config(DatasetConfig, path)
            kinds["dataset"] += 1
    assert kinds["trainer"] >= 3 and kinds["profile"] == len(RUNNER_PROFILES) and kinds["dataset"] >= 4
