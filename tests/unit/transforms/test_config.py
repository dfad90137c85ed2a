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


def _refusal(call, *args) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call(*args)
    return info.value


def test_misspelled_key_is_named_with_suggestion(tmp_path):
    error = _refusal(load_config, DatasetConfig, _write(tmp_path, "g2net:\n  bandpas: {low_hz: 20}\n"))
    assert error.code == "unknown_key" and "g2net.bandpas" in str(error) and "'bandpass'" in str(error)


def test_unknown_nested_key_is_named(tmp_path):
    error = _refusal(load_config, DatasetConfig, _write(tmp_path, "g2net:\n  bandpass: {low_hz: 20, hihg_hz: 400}\n"))
    assert error.code == "unknown_key" and "g2net.bandpass.hihg_hz" in str(error) and "'high_hz'" in str(error)


def test_wrong_type_is_named(tmp_path):
    error = _refusal(load_config, DatasetConfig, _write(tmp_path, "build:\n  examples_per_shard: lots\n"))
    assert error.code == "config" and "build.examples_per_shard" in str(error)


def test_fractions_must_sum_to_one():
    overrides = ["split.fractions={train: 0.8, val: 0.1, test: 0.2}"]
    error = _refusal(load_config, DatasetConfig, "run_configs/g2net.yaml", overrides)
    assert error.code == "config" and "split.fractions" in str(error)


def test_bandpass_order_checked():
    error = _refusal(load_config, DatasetConfig, "run_configs/g2net.yaml", ["g2net.bandpass.low_hz=600"])
    assert error.code == "config" and "g2net.bandpass" in str(error)


def test_set_overrides_any_key_and_is_validated():
    config = load_config(DatasetConfig, "run_configs/g2net.yaml", ["g2net.bandpass.high_hz=400", "name=x"])
    assert config.g2net.bandpass.high_hz == 400 and config.name == "x"
    error = _refusal(load_config, DatasetConfig, "run_configs/g2net.yaml", ["split.salty=1"])
    assert error.code == "unknown_key" and "split.salty" in str(error)


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=null") == (["a"], None)
    error = _refusal(parse_override, "novalue")
    assert error.code == "config" and "'novalue'" in str(error)
    error = _refusal(apply_overrides, {"a": 1}, ["a.b=2"])
    assert error.code == "config" and "'a.b=2'" in str(error)


def test_missing_config_file_is_clear(tmp_path):
    error = _refusal(load_config, DatasetConfig, str(tmp_path / "nope.yaml"))
    assert error.code == "config" and "nope.yaml" in str(error)


RUNNER_PROFILES = {"local", "local_multiprocess", "portable", "dataflow", "dataflow_image", "flink", "flink_local"}


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
                assert error.code == "placeholder", path
            kinds["profile"] += 1
        else:
            load_config(DatasetConfig, path)
            kinds["dataset"] += 1
    assert kinds["trainer"] >= 3 and kinds["profile"] == len(RUNNER_PROFILES) and kinds["dataset"] >= 4
