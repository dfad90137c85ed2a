"""OUT is sigforge's, or it is refused: a stage writes only into an empty folder or a sigforge dataset, deletes
only what the manifest says sigforge published, and never touches a path inside or above the raw input."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from beam_pipelines.commands import cli
from beam_pipelines.dataset import lock, manifest
from beam_pipelines.dataset.errors import StageError
from tests.support.dataset_fixture import build_dataset, clean_dataset

DEMO = "run_configs/demo.yaml"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, g2net_raw):
    return clean_dataset(tmp_path_factory, g2net_raw)


@pytest.fixture(scope="module")
def split_only(tmp_path_factory, g2net_raw):
    """build + split (real stages), no analyze yet."""
    return build_dataset(g2net_raw, tmp_path_factory.mktemp("split_only") / "ds", normalize=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _project(tmp_path: Path) -> Path:
    """A user's project folder: their own report/, stats/ and notes, no sigforge marker, no manifest."""
    project = tmp_path / "project"
    (project / "report").mkdir(parents=True)
    (project / "report" / "index.html").write_text("my thesis figures")
    (project / "stats").mkdir()
    (project / "stats" / "fit.csv").write_text("a,b\n1,2\n")
    (project / "notes.txt").write_text("do not lose")
    return project


@pytest.mark.parametrize("command", ["build", "run"])
def test_a_project_folder_is_refused_as_output(command, tmp_path, g2net_raw, caplog):
    project = _project(tmp_path)
    before = _files(project)
    args = [command, "--config", DEMO, "--input", str(g2net_raw), "--output", str(project)]
    with caplog.at_level(logging.ERROR):
        assert cli.main(args) == 2
        assert cli.main([*args, "--overwrite"]) == 2
    assert "not a sigforge dataset folder" in caplog.text
    assert _files(project) == before  # nothing written, nothing deleted, no lock file left


@pytest.mark.parametrize("stage", ["split", "analyze", "normalize"])
def test_a_single_stage_into_a_project_folder_is_refused(stage, tmp_path):
    project = _project(tmp_path)
    before = _files(project)
    with pytest.raises(StageError) as info:
        manifest.begin_stage(str(project), stage, overwrite=True)
    assert info.value.code == "not_a_dataset"
    assert _files(project) == before


def test_overwrite_never_deletes_a_stats_folder_sigforge_did_not_publish(split_only, tmp_path, caplog):
    """build and split ran; the user then put their own stats/ and report/ in OUT. analyze refuses without
    recommending --overwrite, and --overwrite (of analyze, or of split, which would drop later stages) refuses
    too, with every user file intact."""
    out = tmp_path / "ds"
    shutil.copytree(split_only, out)
    (out / "stats").mkdir()
    (out / "stats" / "mine.npz").write_bytes(b"user data")
    before = _files(out)
    for stage, overwrite in (("analyze", False), ("analyze", True), ("split", True)):
        with pytest.raises(StageError) as info:
            manifest.begin_stage(str(out), stage, overwrite=overwrite, requires="split" if stage == "analyze" else None)
        assert info.value.code == "not_ours", (stage, overwrite)
        assert "stats" in str(info.value) and "--overwrite" not in str(info.value).split("sigforge did not")[0]
    assert _files(out) == before
    with caplog.at_level(logging.ERROR):
        assert cli.main(["analyze", "--config", DEMO, "--output", str(out), "--overwrite"]) == 2
    assert "did not publish" in caplog.text and _files(out) == before


def test_a_user_report_folder_is_neither_overwritten_nor_deleted(clean, tmp_path, caplog):
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    shutil.rmtree(out / "report", ignore_errors=True)
    (out / "report").mkdir()
    (out / "report" / "index.html").write_text("my own page")
    with caplog.at_level(logging.ERROR):
        assert cli.main(["report", str(out)]) == 2
    assert (out / "report" / "index.html").read_text() == "my own page"
    with pytest.raises(StageError) as info:
        manifest.begin_stage(str(out), "normalize", overwrite=True, requires="analyze")
    assert info.value.code == "not_ours"
    assert (out / "report" / "index.html").read_text() == "my own page"


def test_the_manifest_records_what_each_stage_published(split_only):
    from beam_pipelines.dataset import ownership

    stages = json.loads((split_only / "manifest.json").read_text())["stages"]
    assert stages["build"]["published"] == ["tfrecords/", "rejected/build.csv", "provenance/"]
    assert stages["split"]["published"] == ["split/"]
    assert (split_only / ownership.MARKER).is_file()


def test_overwrite_deletes_exactly_what_was_published(clean, tmp_path):
    """--overwrite of split deletes split/, stats/, norm/ (published) and keeps a user's file next to them."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    (out / "README.md").write_text("my notes on this dataset")
    run = manifest.begin_stage(str(out), "split", overwrite=True, requires="build")
    assert not (out / "split").exists() and not (out / "stats").exists() and not (out / "norm").exists()
    assert (out / "README.md").read_text() == "my notes on this dataset" and (out / "tfrecords").is_dir()
    shutil.rmtree(run.tmp)


def test_a_stage_output_published_but_not_yet_in_the_manifest_is_still_sigforges(split_only, tmp_path, monkeypatch):
    """A run killed between publishing stats/ and writing its manifest entry: stats/ is recorded as being
    published, so the rerun's --overwrite may replace it (nothing blocks the rerun)."""
    out = tmp_path / "ds"
    shutil.copytree(split_only, out)
    run = manifest.begin_stage(str(out), "analyze", overwrite=False, requires="split")
    (Path(run.tmp) / "stats").mkdir()
    (Path(run.tmp) / "stats" / "x.npz").write_bytes(b"x")
    real_write = manifest.write_manifest
    calls = []

    def dying_write(folder, data):
        calls.append(1)
        if len(calls) == 2:  # the first write records the publish, the second would add the stage's entry
            raise KeyboardInterrupt
        real_write(folder, data)

    monkeypatch.setattr(manifest, "write_manifest", dying_write)
    with pytest.raises(KeyboardInterrupt):
        manifest.finish_stage(run, {"seen": 1})
    monkeypatch.undo()
    assert (out / "stats" / "x.npz").exists()
    run = manifest.begin_stage(str(out), "analyze", overwrite=True, requires="split")
    assert not (out / "stats").exists()
    shutil.rmtree(run.tmp)


def _link_input(tmp_path: Path, raw: Path) -> Path:
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    return copy


@pytest.mark.parametrize("layout", ["equal", "out_inside_input", "input_inside_out", "symlink_to_input"])
def test_input_and_output_must_not_overlap(layout, tmp_path, g2net_raw, caplog):
    raw = _link_input(tmp_path, g2net_raw)
    if layout == "equal":
        inp, out = raw, raw
    elif layout == "out_inside_input":
        inp, out = raw, raw / "ds"
    elif layout == "input_inside_out":
        inp, out = raw, tmp_path
    else:
        inp, out = raw, tmp_path / "alias"
        os.symlink(raw, out)
    before = _files(raw)
    with caplog.at_level(logging.ERROR):
        assert cli.main(["build", "--config", DEMO, "--input", str(inp), "--output", str(out), "--overwrite"]) == 2
    assert "overlap" in caplog.text
    assert _files(raw) == before
    from beam_pipelines.dataset import ownership

    with pytest.raises(StageError) as info:
        ownership.check_no_overlap(str(out), str(inp))
    assert info.value.code == "overlap"


def test_overwrite_never_deletes_a_recorded_input_inside_out(clean, tmp_path, caplog):
    """A dataset whose build read its raw input from OUT/split/ (made before this check existed): split
    --overwrite must not delete the raw input."""
    out = tmp_path / "ds"
    shutil.copytree(clean, out)
    data = json.loads((out / "manifest.json").read_text())
    data["stages"]["build"]["input_dir"] = str(out / "split")
    (out / "manifest.json").write_text(json.dumps(data))
    before = _files(out / "split")
    with caplog.at_level(logging.ERROR):
        assert cli.main(["split", "--config", DEMO, "--output", str(out), "--overwrite"]) == 2
    assert "overlap" in caplog.text and _files(out / "split") == before
    assert not (out / lock.LOCK_FILE).exists()


def test_the_demo_refuses_a_folder_it_did_not_make(tmp_path, monkeypatch):
    from beam_pipelines.commands import demo
    from transforms.recipes.g2net import sample as gw_sample

    project = _project(tmp_path)
    before = _files(project)

    def no_sample(*args, **kwargs):
        raise RuntimeError("the demo went on")

    monkeypatch.setattr(gw_sample, "write_g2net_sample", no_sample)
    code = None
    try:
        code = demo.main(["--out", str(project)])
    except RuntimeError:
        pass
    assert _files(project) == before
    assert code == 2


def test_an_output_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("a,b\n")
    with pytest.raises(StageError) as info:
        manifest.begin_stage(str(target), "build", overwrite=True)
    assert info.value.code == "not_a_dataset" and target.read_text() == "a,b\n"


def test_an_object_store_prefix_with_other_objects_is_refused(g2net_raw):
    """The same rule on an object store (memfs:// stands in for gs://): objects below the prefix that are not a
    sigforge dataset's refuse the build before the lock object is written."""
    from tests.support import memfs

    memfs.clear()
    try:
        memfs.write("memfs://bucket/project/notes.txt", b"mine")
        code = cli.main(["build", "--config", DEMO, "--input", str(g2net_raw), "--output", "memfs://bucket/project"])
        assert code == 2 and memfs.paths() == ["memfs://bucket/project/notes.txt"]
    finally:
        memfs.clear()
