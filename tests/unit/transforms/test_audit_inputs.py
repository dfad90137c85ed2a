"""Audit: raw inputs are recounted independently of the manifest, so an example removed everywhere is found."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from tests.support.dataset_fixture import (
    clean_dataset,
    copy_dataset,
    read_records,
    read_table,
    write_records,
    write_table,
)
from tests.support.paths import RUN_CONFIGS
from transforms import audit
from transforms.audit_inputs import glob_regex
from transforms.contract import example_keys


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


def test_glob_regex_follows_beam_patterns():
    nested = glob_regex("train/**/*.npy")
    assert nested.match("train/0/0/a.npy") and not nested.match("train/a.npy") and not nested.match("train/0/a.npyx")
    flat = glob_regex("*.npy")
    assert flat.match("a.npy") and not flat.match("x/a.npy")


def _remove_everywhere(ds, uid: str) -> None:
    """Deletes ``uid``'s record and table row from every stage's folders."""
    for table in ds.glob("**/data_tbl_*.csv"):
        columns, rows = read_table(table)
        kept = [r for r in rows if r["uid"] != uid]
        if len(kept) == len(rows):
            continue
        shard = table.parent / rows[0]["shard"] if rows else None
        for row in rows:
            if row["uid"] == uid:
                shard = table.parent / row["shard"]
        write_records(shard, [r for r in read_records(shard) if example_keys(r)[0] != uid])
        write_table(table, columns, kept)


def test_example_removed_from_every_stage_with_the_counts_adjusted_is_found(clean, tmp_path):
    ds = copy_dataset(clean, tmp_path / "ds")
    rows = [r for t in sorted((ds / "split" / "train").glob("data_tbl_*.csv")) for r in read_table(t)[1]]
    per_target = defaultdict(list)
    for row in rows:
        per_target[row["target_id"]].append(row)
    victim = next(members[0] for _, members in sorted(per_target.items()) if len(members) >= 2)
    _remove_everywhere(ds, victim["uid"])

    data = json.loads((ds / "manifest.json").read_text())
    stages = data["stages"]
    for stage in ("build", "split", "normalize"):
        stages[stage]["seen"] -= 1
        stages[stage]["written"] -= 1
    stages["split"]["splits"]["train"]["examples"] -= 1
    labels = Counter(stages["split"]["splits"]["train"]["labels"])
    labels[victim["label"]] -= 1
    stages["split"]["splits"]["train"]["labels"] = dict(labels)
    for key in ("examples", "seen"):
        if key in stages["normalize"]["splits"]["train"]:
            stages["normalize"]["splits"]["train"][key] -= 1
    (ds / "manifest.json").write_text(json.dumps(data))

    problems = audit.audit_dataset(str(ds))
    assert len(problems) == 1, problems  # every count agrees: only the recount of the raw inputs can see it
    assert "1 input(s) under" in problems[0] and victim["uid"] in problems[0]


def test_inputs_are_not_recounted_when_the_input_folder_is_gone(clean, tmp_path):
    ds = copy_dataset(clean, tmp_path / "ds")
    data = json.loads((ds / "manifest.json").read_text())
    data["stages"]["build"]["input_dir"] = str(tmp_path / "moved-away")
    (ds / "manifest.json").write_text(json.dumps(data))
    assert audit.audit_dataset(str(ds)) == []


def test_a_relative_input_dir_is_recounted_from_another_working_directory(g2net_raw, tmp_path, monkeypatch):
    """`--input raw/` typed in one folder is recorded absolute; the audit, run from another folder, still
    recounts the inputs and finds one added after the build (neither written nor rejected)."""
    import shutil

    from beam_pipelines.commands import cli

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    shutil.copytree(g2net_raw, work / "raw")
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    config = str(RUN_CONFIGS / "demo.yaml")
    assert cli.main(["build", "--config", config, "--input", "raw/", "--output", "ds"]) == 0
    recorded = json.loads((work / "ds" / "manifest.json").read_text())["stages"]["build"]["input_dir"]
    assert recorded == str(work / "raw")
    npy = sorted((work / "raw").rglob("*.npy"))[0]
    shutil.copy(npy, npy.with_name("zz_added_after_the_build.npy"))
    monkeypatch.chdir(elsewhere)
    problems = audit.audit_dataset(str(work / "ds"))
    assert len(problems) == 1 and "zz_added_after_the_build" in problems[0], problems


def test_fs_absolute_normalizes_local_paths_and_keeps_urls(tmp_path, monkeypatch):
    from beam_pipelines.dataset import fs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fs.absolute("raw/") == str(tmp_path / "raw")
    assert fs.absolute("./a/../raw") == str(tmp_path / "raw")
    assert fs.absolute("~/raw/") == str(tmp_path / "home" / "raw")
    assert fs.absolute("gs://bucket/raw/") == "gs://bucket/raw"
