"""CLI edges: one-line refusals instead of tracebacks, -v before a delegated command, no stale report."""

from __future__ import annotations

import json

from beam_pipelines.commands import cli
from beam_pipelines.dataset import manifest


def test_report_of_a_folder_without_manifest_is_one_line_exit_2(tmp_path, caplog):
    assert cli.main(["report", str(tmp_path / "missing")]) == 2  # a traceback would raise here instead
    assert caplog.records[-1].code == "stage" and "manifest.json" in caplog.records[-1].getMessage()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    assert cli.main(["report", str(tmp_path / "bad")]) == 2
    assert caplog.records[-1].code == "stage" and "bad/manifest.json" in caplog.records[-1].getMessage()


def test_verbose_flag_before_train_is_passed_on(monkeypatch):
    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 0

    monkeypatch.setattr("model.train.main", fake_main)
    assert cli.main(["-v", "train", "--data", "D", "--config", "C", "--out", "O"]) == 0
    assert seen["argv"] == ["--log-level", "DEBUG", "--data", "D", "--config", "C", "--out", "O"]
    assert cli.main(["train", "--data", "D"]) == 0 and seen["argv"] == ["--data", "D"]


def test_overwrite_drops_the_stale_report(tmp_path):
    out = tmp_path / "ds"
    (out / "report").mkdir(parents=True)
    (out / "report" / "index.html").write_text("old counts")
    (out / "manifest.json").write_text(json.dumps({"stages": {"build": {"seen": 1}}}))
    run = manifest.begin_stage(str(out), "build", overwrite=True)
    assert not (out / "report").exists()
    assert "build" not in json.loads((out / "manifest.json").read_text())["stages"]
    manifest.fs.delete_tree(run.tmp)
