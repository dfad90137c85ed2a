"""Configs refused before any work: exit 2, one log line naming the key (code ``config`` on its record), no
traceback, no output folder."""

from __future__ import annotations

import logging

import pytest

from beam_pipelines.commands import cli


def _refused(caplog, tmp_path, raw, config, *overrides, command="run"):
    out = tmp_path / "ds"
    args = [command, "--config", str(config), "--input", str(raw), "--output", str(out)]
    for override in overrides:
        args += ["--set", override]
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sigforge"):
        code = cli.main(args)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()
    assert errors[0].exc_info is None  # a message, not a traceback
    assert errors[0].code == "config"
    assert not out.exists()  # refused before any work
    return errors[0].getMessage()


def _yaml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


CASES = {
    "examples_per_shard_bool": (["build.examples_per_shard=true"], "examples_per_shard"),
    "nan_fraction": (["split.fractions={train: .nan, val: 0.5, test: 0.5}"], "split.fractions"),
    "inf_fraction": (["split.fractions={train: .inf, val: 0, test: 0}"], "split.fractions"),
    "above_nyquist": (["g2net.bandpass.high_hz=1500"], "g2net.bandpass.high_hz"),
    "cap_group_column": (["analyze.cap_group_column=source_id"], "analyze.cap_group_column"),
    "malformed_set": (["g2net.bandpass=[1, 2"], "g2net.bandpass"),
    "set_without_equals": (["g2net.bandpass"], "g2net.bandpass"),
    "psd_labels_undeclared": (["g2net.psd_labels=[7]"], "g2net.psd_labels"),
    "std_bounds_reversed": (["g2net.min_channel_std=1e-10", "g2net.max_channel_std=1e-20"], "min_channel_std"),
    "labels_empty": (["g2net.labels=[]"], "g2net.labels"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_override_refused_naming_the_key(case, caplog, tmp_path, g2net_raw):
    overrides, key = CASES[case]
    message = _refused(caplog, tmp_path, g2net_raw, "run_configs/g2net.yaml", *overrides)
    assert key in message


def test_psd_labels_matching_no_row_refused_after_a_look_at_the_labels(caplog, tmp_path, g2net_raw):
    """psd_labels=[1] is declared, but a labels CSV with only label-1 rows... here the reverse: no row has 0."""
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    lines = (raw / "training_labels.csv").read_text().splitlines()
    (raw / "training_labels.csv").write_text("\n".join([lines[0], *[x for x in lines[1:] if ",1," in x]]) + "\n")
    message = _refused(caplog, tmp_path, raw, "run_configs/g2net.yaml")
    assert "g2net.psd_labels" in message and "training_labels.csv" in message


def test_extends_loop(caplog, tmp_path, g2net_raw):
    _yaml(tmp_path, "a.yaml", "extends: b.yaml\nrecipe: g2net\n")
    _yaml(tmp_path, "b.yaml", "extends: a.yaml\n")
    assert "'extends'" in _refused(caplog, tmp_path, g2net_raw, tmp_path / "a.yaml")


def test_top_level_list(caplog, tmp_path, g2net_raw):
    config = _yaml(tmp_path, "list.yaml", "- recipe: g2net\n- name: x\n")
    assert "list.yaml" in _refused(caplog, tmp_path, g2net_raw, config)


def test_invalid_yaml_is_one_line(caplog, tmp_path, g2net_raw):
    config = _yaml(tmp_path, "bad.yaml", "recipe: g2net\nbuild: {examples_per_shard: [\n")
    assert "bad.yaml" in _refused(caplog, tmp_path, g2net_raw, config)


def test_labels_csv_with_undecodable_header(caplog, tmp_path, g2net_raw):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    body = (raw / "training_labels.csv").read_bytes()
    (raw / "training_labels.csv").write_bytes(b"\xff\xfe" + body)
    assert "training_labels.csv" in _refused(caplog, tmp_path, raw, "run_configs/g2net.yaml")


def test_valid_bool_fields_still_accept_booleans():
    from transforms.config import FilterCondition

    assert FilterCondition(name="x", target_ids_file="f", keep_listed=False).keep_listed is False
