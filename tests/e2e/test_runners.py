"""Runner profiles, and proof that the pipelines are runner-clean.

The fast tests check the profiles in run_configs/ and how ``--profile`` merges with the Beam flags after ``--``.
The slow ones run the whole chain (build, split, analyze, normalize) on the same generated sample five ways and
require the same dataset from each: in memory (FnApiRunner), with Beam's construction-time type check, in 2 worker
threads, in 2 worker subprocesses per pipeline (DoFns pickled to fresh processes: the local_multiprocess
profile), and through the PortableRunner against Beam's Python
job service (pipeline proto, job API, Fn API over gRPC). One job service serves the module; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions, PortableOptions, StandardOptions, TypeOptions

from beam_pipelines.commands import cli
from beam_pipelines.runtime.options import (
    FN_API_RUNNER,
    load_profile,
    make_pipeline_options,
    with_profile,
)
from beam_pipelines.stages.run_all import run_all
from tests.support.paths import RUN_CONFIGS
from transforms.audit import audit_dataset
from transforms.config import ConfigError, DatasetConfig, load_config
from transforms.contract import example_keys
from transforms.splitting import SPLITS

PROFILES = RUN_CONFIGS
LOCAL = str(PROFILES / "local.yaml")
MULTI = str(PROFILES / "local_multiprocess.yaml")
PORTABLE = str(PROFILES / "portable.yaml")
DATAFLOW = str(PROFILES / "dataflow.yaml")
FLINK = str(PROFILES / "flink.yaml")
DATAFLOW_FILLED = ["--project=p", "--temp_location=gs://b/tmp", "--staging_location=gs://b/staging"]


# ---- profiles ------------------------------------------------------------------------------------------------------


def test_local_profiles_stay_on_the_fn_api_runner():
    in_memory = make_pipeline_options(load_profile(LOCAL))
    assert in_memory.view_as(StandardOptions).runner == FN_API_RUNNER
    assert in_memory.view_as(DirectOptions).direct_running_mode == "in_memory"
    multi = make_pipeline_options(load_profile(MULTI))
    assert multi.view_as(StandardOptions).runner == FN_API_RUNNER
    # Beam's own worker processes, one per core (direct_num_workers 0)
    assert multi.view_as(DirectOptions).direct_running_mode == "multi_processing"
    assert multi.view_as(DirectOptions).direct_num_workers == 0


def test_local_runs_skip_the_construction_time_type_check_unless_asked():
    def checked(flags):
        return make_pipeline_options(flags).view_as(TypeOptions).pipeline_type_check

    assert not checked([]) and not checked(load_profile(LOCAL)) and not checked(load_profile(MULTI))
    assert checked(["--pipeline_type_check"])  # what test_other_runner_gives_the_same_dataset[type_checked] runs
    assert checked(with_profile(PORTABLE, ["--job_endpoint=localhost:1"]))  # remote runners keep Beam's default
    assert not checked(with_profile(PORTABLE, ["--job_endpoint=localhost:1", "--no_pipeline_type_check"]))


def test_command_line_flags_win_over_the_profile():
    flags = with_profile(MULTI, ["--direct_num_workers=3"])
    assert flags[-1] == "--direct_num_workers=3"
    assert make_pipeline_options(flags).view_as(DirectOptions).direct_num_workers == 3
    flags = with_profile(LOCAL, ["--direct_num_workers=2"])
    assert make_pipeline_options(flags).view_as(DirectOptions).direct_num_workers == 2
    portable = make_pipeline_options(with_profile(PORTABLE, ["--job_endpoint=localhost:1234"]))
    assert portable.view_as(StandardOptions).runner == "PortableRunner"
    assert portable.view_as(PortableOptions).job_endpoint == "localhost:1234"
    assert portable.view_as(PortableOptions).environment_type == "LOOPBACK"
    assert with_profile(None, ["--a=1"]) == ["--a=1"]


def _refusal(call, *args) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call(*args)
    return info.value


def test_remote_profiles_refuse_placeholders_until_given():
    error = _refusal(with_profile, DATAFLOW, [])
    assert error.code == "placeholder" and "'project'" in str(error)
    error = _refusal(with_profile, DATAFLOW, ["--project=p"])
    assert error.code == "placeholder" and "'temp_location'" in str(error)
    dataflow = make_pipeline_options(with_profile(DATAFLOW, DATAFLOW_FILLED)).get_all_options()
    assert dataflow["runner"] == "DataflowRunner" and dataflow["project"] == "p"
    assert dataflow["setup_file"] == "./setup.py" and dataflow["max_num_workers"] == 50
    assert dataflow["temp_location"] == "gs://b/tmp" and dataflow["machine_type"]
    error = _refusal(with_profile, FLINK, [])
    assert error.code == "placeholder" and "'flink_master'" in str(error)
    flink = make_pipeline_options(with_profile(FLINK, ["--flink_master=host:8081"])).get_all_options()
    assert (flink["runner"], flink["flink_master"], flink["parallelism"]) == ("FlinkRunner", "host:8081", 8)
    assert flink["environment_type"] == "LOOPBACK"


def test_profile_keys_and_options_are_checked(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("options: {direct_num_worker: 2}\n")
    error = _refusal(load_profile, str(typo))
    assert error.code == "config" and "'direct_num_worker'" in str(error) and "'direct_num_workers'" in str(error)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("option: {runner: PortableRunner}\n")
    error = _refusal(load_profile, str(unknown))
    assert error.code == "unknown_key" and "'option'" in str(error) and "'options'" in str(error)
    raw = tmp_path / "raw.yaml"
    raw.write_text("options: {experiments: [a, b], use_public_ips: true}\nbeam_args: ['--plugin_flag=x']\n")
    assert load_profile(str(raw)) == ["--experiments=a", "--experiments=b", "--use_public_ips", "--plugin_flag=x"]
    dashes = tmp_path / "dashes.yaml"
    dashes.write_text("beam_args: [runner=PortableRunner]\n")
    error = _refusal(load_profile, str(dashes))
    assert error.code == "config" and "'beam_args'" in str(error)


@pytest.mark.parametrize("command", ["run", "build", "split", "analyze", "normalize", "filter"])
def test_cli_profile_goes_before_the_beam_args(command, monkeypatch, tmp_path):
    seen = {}

    def fake_handler(args, beam_args):
        seen["beam_args"] = beam_args
        return 0

    for name in ("_cmd_run", "_cmd_build", "_cmd_stage"):  # looked up when main() builds the parser
        monkeypatch.setattr(cli, name, fake_handler)
    argv = [command, "--config", "run_configs/g2net.yaml", "--output", str(tmp_path / "ds"), "--profile", MULTI]
    argv += ["--input", "raw"] if command in ("run", "build") else []
    assert cli.main(argv + ["--", "--direct_num_workers=2"]) == 0
    assert seen["beam_args"] == load_profile(MULTI) + ["--direct_num_workers=2"]


def test_cli_refuses_an_unfilled_profile_before_any_work(tmp_path, caplog):
    out = tmp_path / "ds"
    argv = ["split", "--config", "run_configs/g2net.yaml", "--output", str(out), "--profile", DATAFLOW]
    assert cli.main(argv) == 2
    assert caplog.records[-1].code == "placeholder" and "'project'" in caplog.records[-1].getMessage()
    assert not out.exists()


# ---- the same dataset on every runner ------------------------------------------------------------------------------

CHAIN_OVERRIDES = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=12",
    "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
]
SHARD_FOLDERS = ["tfrecords", *(f"split/{s}" for s in SPLITS), *(f"norm/{s}" for s in SPLITS)]
NORM_SPEC = {
    "strain": tf.io.FixedLenFeature([3, 4096], tf.float32),
    "uid": tf.io.FixedLenFeature([], tf.string),
    "target_id": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


@pytest.fixture(scope="module")
def job_endpoint(tmp_path_factory):
    """Beam's pure-Python job service (runs jobs on the FnApiRunner) in a subprocess, for the whole module."""
    folder = tmp_path_factory.mktemp("job_service")
    port_file = folder / "port"
    command = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port=0"]
    command += [f"--port_file={port_file}", f"--staging_dir={folder / 'staging'}"]
    with open(folder / "log.txt", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if process.poll() is not None:
                pytest.fail(f"the job service exited with {process.returncode}: {(folder / 'log.txt').read_text()}")
            if time.monotonic() > deadline:
                pytest.fail("the job service did not start within 120 s")
            time.sleep(0.2)
        yield f"localhost:{port_file.read_text().strip()}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_chain(raw, out: Path, beam_args: list[str]) -> Path:
    run_all(load_config(DatasetConfig, "run_configs/demo.yaml", CHAIN_OVERRIDES), str(raw), str(out), beam_args)
    return out


def _stage_counts(out: Path) -> dict:
    """The manifest's per-stage entries without timings, the shard count (how examples fall into shards may follow
    the runner's bundles; the per-uid comparisons below cover the content) and float statistics (compared from
    the npz files with a tolerance)."""
    stages = json.loads((out / "manifest.json").read_text())["stages"]

    def exact(value):
        return not isinstance(value, float) and not (
            isinstance(value, list) and any(isinstance(v, float) for v in value)
        )

    skip = ("seconds", "completed_at", "num_shards")
    return {name: {k: v for k, v in e.items() if k not in skip and exact(v)} for name, e in stages.items()}


def _table_rows(out: Path, folder: str) -> dict[str, dict]:
    """uid -> data-table row without its shard column, over every table of ``folder``; no uid twice."""
    rows = {}
    for path in sorted((out / folder).glob("data_tbl_*.csv")):
        for row in csv.DictReader(path.open()):
            assert row["uid"] not in rows, f"{folder}: uid {row['uid']} listed twice"
            rows[row.pop("uid")] = {k: v for k, v in row.items() if k != "shard"}
    return rows


def _records(out: Path, folder: str) -> dict[str, bytes]:
    """uid -> serialized example, over every shard of ``folder``."""
    files = sorted(str(p) for p in (out / folder).glob("*.tfrecord"))
    return {example_keys(r)[0]: r for r in tf.data.TFRecordDataset(files).as_numpy_iterator()}


def _norm_examples(out: Path, split: str) -> dict[str, dict]:
    files = sorted(str(p) for p in (out / "norm" / split).glob("*.tfrecord"))
    parsed = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, NORM_SPEC))
    return {e["uid"].decode(): e for e in parsed.as_numpy_iterator()}


@pytest.fixture(scope="module")
def in_memory(g2net_raw, tmp_path_factory):
    return _run_chain(g2net_raw, tmp_path_factory.mktemp("runner_in_memory") / "ds", load_profile(LOCAL))


@pytest.mark.slow
def test_in_memory_chain_passes_audit(in_memory):
    out = in_memory
    assert audit_dataset(str(out), group_column="source_id") == []
    assert all(_table_rows(out, f"norm/{s}") for s in SPLITS)  # every split has examples
    limits = {"tfrecords": 16, **{f: 12 for f in SHARD_FOLDERS if f != "tfrecords"}}
    for folder, limit in limits.items():  # shard size is bounded by examples_per_shard
        for path in (out / folder).glob("data_tbl_*.csv"):
            assert len(list(csv.DictReader(path.open()))) <= limit, path


MODES = ["type_checked", "multi_threading", "multi_processing", "portable"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_other_runner_gives_the_same_dataset(mode, in_memory, g2net_raw, tmp_path, request):
    if mode in ("multi_threading", "multi_processing"):  # Beam's own worker threads or processes
        beam_args = [f"--direct_running_mode={mode}", "--direct_num_workers=2"]
    elif mode == "portable":
        beam_args = with_profile(PORTABLE, [f"--job_endpoint={request.getfixturevalue('job_endpoint')}"])
    elif mode == "type_checked":  # in memory with Beam's construction-time type check, which local runs skip
        beam_args = ["--pipeline_type_check"]
    out = _run_chain(g2net_raw, tmp_path / "ds", beam_args)
    reference = in_memory
    assert audit_dataset(str(out), group_column="source_id") == []
    assert _stage_counts(out) == _stage_counts(reference)
    # Same uids in every split with the same data-table rows; raw and split examples byte for byte.
    for folder in SHARD_FOLDERS:
        assert _table_rows(out, folder) == _table_rows(reference, folder), folder
        if not folder.startswith("norm/"):
            assert _records(out, folder) == _records(reference, folder), folder
    # Same statistics: float64 sums merged in another order may differ in the last bits, nothing more.
    for name in ("train_stats.npz", "avg_psd.npz"):
        expected, got = np.load(reference / "stats" / name), np.load(out / "stats" / name)
        assert sorted(got.files) == sorted(expected.files)
        for key in expected.files:
            atol = 1e-12 if key.startswith("channel_") else 0.0  # unit-scale standardization moments
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-9, atol=atol, err_msg=f"{name}:{key}")
    # Same normalized examples (tfx_bsl's C++ encoder orders features per process, so compare parsed values).
    for split in SPLITS:
        expected, got = _norm_examples(reference, split), _norm_examples(out, split)
        assert got.keys() == expected.keys()
        for uid, example in got.items():
            assert (example["target_id"], example["label"]) == (expected[uid]["target_id"], expected[uid]["label"])
            np.testing.assert_allclose(example["strain"], expected[uid]["strain"], rtol=1e-5, atol=1e-6)
