"""Progress: the heartbeat pass-through under TestPipeline, the driver's monitor, and a stage that reports."""

from __future__ import annotations

import logging
import time

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.dataset import fs
from beam_pipelines.io import progress
from beam_pipelines.io.counting import Tally
from beam_pipelines.stages.runner import run_stage


def test_heartbeat_passes_elements_through_and_counts_them(tmp_path):
    folder = str(tmp_path / "_progress")
    with TestPipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create(list(range(57))) | progress.Heartbeat(folder, heartbeat_s=0.0)
        assert_that(out, equal_to(list(range(57))))
    assert fs.glob(fs.join(folder, "*.json")), "each DoFn instance writes its own heartbeat file"
    assert progress.read_count(folder) == 57


def test_read_count_sums_files_and_skips_a_partial_one(tmp_path):
    (tmp_path / "a.json").write_text('{"count": 5}')
    (tmp_path / "b.json").write_text('{"count": 7}')
    (tmp_path / "c.json").write_text('{"cou')  # being written
    assert progress.read_count(str(tmp_path)) == 12


def test_describe_gives_rate_and_eta():
    assert progress.describe("split", 30, 120, 10.0) == "split: 30/120 (25%), 3.0/s, ETA 30 s, 10 s"
    assert progress.describe("build", 30, None, 10.0) == "build: 30 elements, 3.0/s, 10 s"
    assert "all 120 read" in progress.describe("split", 120, 120, 10.0)


def _slow(x):
    time.sleep(0.04)
    return x


def test_monitor_reports_while_a_pipeline_runs(tmp_path):
    folder = str(tmp_path / "_progress")
    with progress.ProgressMonitor(folder, "test", total=100, interval=0.2, bar=False) as monitor:
        with TestPipeline(runner=FnApiRunner()) as p:
            _ = p | beam.Create(list(range(100))) | progress.Heartbeat(folder, heartbeat_s=0.05) | beam.Map(_slow)
    assert len(monitor.reports) >= 3, monitor.reports  # ~4 s of work reported every 0.2 s
    counts = [int(line.split(": ")[1].split("/")[0].split(" ")[-1]) for line in monitor.reports if "/100" in line]
    assert counts == sorted(counts) and 0 < max(counts) <= 100
    assert any(0 < c < 100 for c in counts), "a report while the pipeline was half-way"


def test_a_stage_longer_than_the_interval_logs_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0.3")

    def work(ctx):
        with ctx.pipeline(total=60) as p:
            elements = p | beam.Create(list(range(60))) | "Progress" >> ctx.progress() | beam.Map(_slow)
            _ = elements | Tally("seen") | ctx.summary()
        return {"seen": ctx.counts()["seen"], "written": 60, "rejected": 0}

    with caplog.at_level(logging.INFO):
        run_stage("build", str(tmp_path / "out"), work)
    lines = [r.getMessage() for r in caplog.records if r.name == "sigforge.progress"]
    assert lines and all(line.startswith("build: ") for line in lines), lines
    assert any("/60" in line for line in lines)
    summary = [r.getMessage() for r in caplog.records if r.name == "beam_pipelines.stages.runner"]
    assert summary and "examples/s" in summary[-1]


def test_remote_runner_gets_no_heartbeat(tmp_path, caplog, monkeypatch):
    from beam_pipelines.dataset import manifest
    from beam_pipelines.stages.runner import StageContext

    monkeypatch.setattr(progress, "_REMOTE_SAID", set())  # earlier tests may have said it already in this process

    ctx = StageContext(manifest.StageRun(str(tmp_path), "build"), ["--runner=DataflowRunner"])
    with caplog.at_level(logging.INFO):
        step = ctx.progress()
    assert isinstance(step, progress.PassThrough) and not ctx.local
    assert any("runner's UI" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value, expected", [("2.5", 2.5), ("0", 0.1), ("x", progress.DEFAULT_INTERVAL_S)])
def test_interval_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv(progress.INTERVAL_ENV, value)
    assert progress.interval_s() == expected
