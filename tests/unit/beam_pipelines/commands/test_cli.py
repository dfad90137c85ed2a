"""The sigforge CLI: help, bad config refused before any work, beam options passed through, run + audit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from beam_pipelines.commands import cli
from beam_pipelines.runtime.options import FN_API_RUNNER, make_pipeline_options


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    commands = ("make-sample", "build", "split", "analyze", "normalize", "filter", "run", "audit", "train")
    for command in (*commands, "predict", "baseline"):
        assert command in text


def test_split_beam_args_passes_options_through_unchanged():
    own, beam = cli._split_beam_args(["run", "--config", "c", "--", "--runner=DataflowRunner", "--project=p"])
    assert own == ["run", "--config", "c"] and beam == ["--runner=DataflowRunner", "--project=p"]


def test_local_runner_is_forced_to_fnapi_but_others_pass():
    assert make_pipeline_options([]).view_as(StandardOptions).runner == FN_API_RUNNER
    assert make_pipeline_options(["--runner=DirectRunner"]).view_as(StandardOptions).runner == FN_API_RUNNER
    opts = make_pipeline_options(["--runner=DataflowRunner", "--project=p", "--region=r"])
    assert opts.view_as(StandardOptions).runner == "DataflowRunner"
    assert opts.get_all_options()["project"] == "p"
    multi = make_pipeline_options(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert multi.view_as(DirectOptions).direct_num_workers == 2


def test_executable_flushes_output_and_keeps_exit_codes(tmp_path):
    """``python -m beam_pipelines.commands.cli`` ends with os._exit after a normal return (no interpreter teardown): the
    piped (block-buffered) output must still arrive whole, and the exit codes must be the command's."""
    listed = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.commands.cli", "recipes"], capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["g2net", "tce"]
    refused = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.commands.cli", "build", "--config", "run_configs/g2net.yaml"]
        + ["--input", str(tmp_path), "--output", str(tmp_path / "ds"), "--set", "g2net.bandpas.low_hz=10"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2
    assert "g2net.bandpas" in refused.stderr and "Traceback" not in refused.stderr


def test_bad_config_key_refused_before_any_work(tmp_path, caplog, g2net_raw):
    out = tmp_path / "ds"
    code = cli.main(
        ["build", "--config", "run_configs/g2net.yaml", "--input", str(g2net_raw), "--output", str(out)]
        + ["--set", "g2net.bandpas.low_hz=10"]
    )
    assert code == 2
    assert caplog.records[-1].code == "unknown_key" and "g2net.bandpas" in caplog.records[-1].getMessage()
    assert not out.exists()


def test_run_and_audit_end_to_end(tmp_path, g2net_raw_k3, caplog):
    out = tmp_path / "ds"
    args = ["run", "--config", "run_configs/demo.yaml", "--input", str(g2net_raw_k3), "--output", str(out)]
    assert cli.main(args + ["--set", "split.fractions={train: 0.6, val: 0.2, test: 0.2}"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"build", "split", "analyze", "normalize"}
    assert cli.main(["audit", str(out), "--group-column", "source_id"]) == 0
    # a second run into the same OUT is refused without --overwrite, and nothing is touched
    before = (out / "manifest.json").read_text()
    assert cli.main(args) == 2
    assert caplog.records[-1].code == "output_exists"
    assert (out / "manifest.json").read_text() == before
    for folder in ("tfrecords", "split/train", "stats/transform_fn", "norm/test"):
        assert (out / folder).is_dir()
