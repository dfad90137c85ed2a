"""The whole chain on a real distributed engine: Apache Flink, through Beam's Flink job server.

``make install`` assembles the job server with Maven (engines/flink/pom.xml -> .cache/flink-job-server/). One job
server serves the module: ``java -jar`` on its launcher jar with ``--flink-master=[local]``, so every pipeline
runs as a Flink job on an embedded Flink 1.19 mini cluster (2 task slots: ``--parallelism=2``), submitted by the
PortableRunner over Beam's job API. Each chain is compared with the same chain in memory the way
tests/e2e/test_runners.py does: same stage counts, uids and data-table rows per split, raw and split records byte for
byte, normalized values and statistics to 1e-12 relative, same rejections; and the Flink dataset passes the audit.

* G2Net, SDK workers in this process (LOOPBACK): the clean 48-sample sample plus the bad-input corpus of
  tests/support/corpus_g2net.py (corrupt, truncated and mistyped .npy files, bad label rows, join problems), through
  build -> split -> analyze (tf.Transform) -> normalize -> filter; every bad input rejected with its reason.
* TCE (four stars, a corrupt FITS file, a malformed TCE row), SDK workers in the processes of Beam's own worker
  pool (EXTERNAL), none of which may outlive it.
* ``sigforge build --profile run_configs/flink_local.yaml``: Beam's FlinkRunner starting the job server itself.
* A stage whose Flink job fails publishes nothing.

Slow (each pipeline is a Flink job) but never skipped: without Java or the job server the tests fail and say why.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines.commands import cli
from beam_pipelines.dataset import manifest
from beam_pipelines.runtime.options import load_profile, make_pipeline_options, with_profile
from beam_pipelines.stages.run_all import run_all
from tests.support.corpus_g2net import MALFORMED_ROW, OUTLIER_IN_STATS, UNDECODABLE_ROW, WRITTEN, add_g2net_corpus
from transforms.audit import audit_dataset
from transforms.config import ConfigError, DatasetConfig, load_config
from transforms.contract import example_keys
from transforms.recipes.tce import sample as tce_sample

REPO = Path(__file__).resolve().parents[2]
JOB_SERVER_JAR = REPO / ".cache" / "flink-job-server" / "beam-flink-job-server.jar"
FLINK_LOCAL = str(REPO / "run_configs" / "flink_local.yaml")
LOCAL = str(REPO / "run_configs" / "local.yaml")
PARALLELISM = 2
G2NET_OVERRIDES = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=12",
    "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
    "filter="
    + json.dumps(
        {
            "examples_per_shard": 12,
            "conditions": [
                {"name": "binary_labels", "labels": [0, 1]},
                {"name": "quiet", "column": "snr", "op": "<", "value": 12},
            ],
        }
    ),
]
TCE_OVERRIDES = ["split.fractions={train: 0.6, val: 0.2, test: 0.2}"]
RTOL = 1e-12


# ---- the profiles ---------------------------------------------------------------------------------------------------


def test_flink_local_profile_finds_the_job_server_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the profile's relative jar is taken from the checkout, not the working directory
    flags = with_profile(FLINK_LOCAL)
    assert f"--flink_job_server_jar={JOB_SERVER_JAR}" in flags
    options = make_pipeline_options(flags).get_all_options()  # a remote runner: not the FnApiRunner
    assert (options["runner"], options["flink_master"], options["flink_version"]) == ("FlinkRunner", "[local]", "1.19")
    assert (options["parallelism"], options["environment_type"]) == (PARALLELISM, "LOOPBACK")


def test_a_missing_job_server_jar_is_refused_before_any_work(tmp_path):
    profile = tmp_path / "flink.yaml"
    profile.write_text("options: {runner: FlinkRunner, flink_job_server_jar: .cache/no-such/job-server.jar}\n")
    with pytest.raises(ConfigError, match=r"no-such/job-server.jar does not exist; `make install`"):
        with_profile(str(profile))
    given = with_profile(str(profile), ["--flink_job_server_jar=/elsewhere/job-server.jar"])  # the user's wins
    assert given[-1] == "--flink_job_server_jar=/elsewhere/job-server.jar"


# ---- the engine: one Flink job server for the module, Beam's worker pool for the EXTERNAL run -----------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, log: Path, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode} before listening:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not listen on port {port} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def job_endpoint(tmp_path_factory):
    """Beam's Flink job server (embedded local Flink) on free ports for the whole module; stopped at its end."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("tests/e2e/test_flink.py needs Java (11+) on PATH to run Beam's Flink job server; see README")
    if not JOB_SERVER_JAR.is_file():
        pytest.fail(
            f"{JOB_SERVER_JAR} is missing: `make install` (or `make engines`) assembles Beam's Flink job server "
            "there with Maven; tests/e2e/test_flink.py runs the chain on it"
        )
    folder = tmp_path_factory.mktemp("flink_job_server")
    log = folder / "job_server.log"
    job_port, artifact_port = _free_port(), _free_port()
    command = [java, "-jar", str(JOB_SERVER_JAR), "--flink-master=[local]", f"--job-port={job_port}"]
    command += [f"--artifact-port={artifact_port}", "--expansion-port=0", f"--artifacts-dir={folder / 'artifacts'}"]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        _wait_listening(job_port, process, log, "the Flink job server")
        yield f"localhost:{job_port}"
    finally:
        _stop(process)


def _on_flink(endpoint: str, *environment: str) -> list[str]:
    return ["--runner=PortableRunner", f"--job_endpoint={endpoint}", f"--parallelism={PARALLELISM}", *environment]


def _session_processes(sid: int) -> list[int]:
    """The live (not zombie) processes of session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry))
    return found


@contextlib.contextmanager
def worker_pool(folder: Path):
    """Beam's worker pool (``python -m apache_beam.runners.worker.worker_pool_main``) in a session of its own; its
    SDK workers are child processes. Yields its address; on exit it is interrupted (Beam stops its workers on a
    clean exit) and no process of its session may be left."""
    port = _free_port()
    log = folder / "worker_pool.log"
    # The pool starts each worker as `python -c ...` (looked up on PATH): this interpreter's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"]
    with open(log, "w") as handle:
        pool = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_listening(port, pool, log, "Beam's worker pool")
        yield f"localhost:{port}", log
    finally:
        _stop(pool, signal.SIGINT)
        deadline = time.monotonic() + 30
        while _session_processes(pool.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _session_processes(pool.pid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"worker processes outlived the worker pool: {left}"


# ---- datasets and how they are compared ----------------------------------------------------------------------------


SKIPPED_ENTRIES = ("seconds", "completed_at", "num_shards")


def _stage_entries(out: Path) -> dict:
    """The manifest's per-stage entries without timings and shard counts (how examples fall into shards follows
    the runner's bundles; the per-uid comparisons cover the content)."""
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    return {name: {k: v for k, v in e.items() if k not in SKIPPED_ENTRIES} for name, e in stages.items()}


def _assert_entries_close(got, expected, where: str = "manifest") -> None:
    """Equal, floats (statistics merged in another order) to RTOL relative, at any depth."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            _assert_entries_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list) and any(isinstance(v, float) for v in expected):  # e.g. per-channel moments
        _close(np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64), where)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
            _assert_entries_close(mine, theirs, f"{where}[{index}]")
    elif isinstance(expected, float):
        _close(np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64), where)
    else:
        assert got == expected, where


def _shard_folders(out: Path) -> list[str]:
    folders = ["tfrecords"] if (out / "tfrecords").is_dir() else []
    for parent in ("split", "norm", "filtered"):
        folders += [f"{parent}/{p.name}" for p in sorted((out / parent).glob("*")) if p.is_dir()]
    return folders


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


def _values(serialized: bytes) -> dict[str, tuple[str, object]]:
    """feature name -> (kind, values) of one serialized example (tfx_bsl's encoder orders features per process,
    so normalized examples are compared by value)."""
    features = tf.train.Example.FromString(serialized).features.feature
    result = {}
    for name, feature in features.items():
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        result[name] = (kind, np.asarray(values, dtype=np.float64) if kind == "float_list" else list(values))
    return result


def _rejections(out: Path) -> dict[str, list[tuple]]:
    """rejected/<stage>.csv -> its rows, sorted (the order rows are written in follows the runner)."""
    return {
        path.name: sorted(tuple(row.items()) for row in csv.DictReader(path.open()))
        for path in sorted((out / "rejected").glob("*.csv"))
    }


def _close(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Equal to RTOL relative; for values near zero, relative to the array's largest value."""
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def assert_same_dataset(out: Path, reference: Path, group_column: str | None) -> None:
    assert audit_dataset(str(out), group_column=group_column) == []
    _assert_entries_close(_stage_entries(out), _stage_entries(reference))
    assert _rejections(out) == _rejections(reference)
    folders = _shard_folders(reference)
    assert _shard_folders(out) == folders
    for folder in folders:
        assert _table_rows(out, folder) == _table_rows(reference, folder), folder
        got, expected = _records(out, folder), _records(reference, folder)
        assert got.keys() == expected.keys(), folder
        if folder == "tfrecords" or folder.startswith("split/"):
            assert got == expected, f"{folder}: records differ"
            continue
        for uid, record in got.items():
            mine, theirs = _values(record), _values(expected[uid])
            assert mine.keys() == theirs.keys(), f"{folder}/{uid}"
            for name, (kind, values) in mine.items():
                assert kind == theirs[name][0], f"{folder}/{uid}:{name}"
                if kind == "float_list":
                    _close(values, theirs[name][1], f"{folder}/{uid}:{name}")
                else:
                    assert values == theirs[name][1], f"{folder}/{uid}:{name}"
    names = sorted(p.name for p in (reference / "stats").glob("*.npz"))
    assert names and sorted(p.name for p in (out / "stats").glob("*.npz")) == names
    for name in names:
        expected, got = np.load(reference / "stats" / name), np.load(out / "stats" / name)
        assert sorted(got.files) == sorted(expected.files), name
        for key in expected.files:
            _close(got[key], expected[key], f"{name}:{key}")


def _run_chain(config_path: str, overrides: list[str], raw: Path, out: Path, beam_args: list[str]) -> Path:
    run_all(load_config(DatasetConfig, config_path, overrides), str(raw), str(out), beam_args)
    return out


def _rows(folder: Path, pattern: str = "data_tbl_*.csv") -> list[dict]:
    rows = []
    for path in sorted(folder.glob(pattern)):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


@pytest.fixture(scope="module")
def g2net_bad(g2net_raw, tmp_path_factory):
    """The 48-sample G2Net sample plus the bad-input corpus; (raw folder, {sample id: expected outcome})."""
    raw = tmp_path_factory.mktemp("flink_g2net") / "raw"
    shutil.copytree(g2net_raw, raw)
    good = np.load(sorted((raw / "train").rglob("*.npy"))[0])
    return raw, add_g2net_corpus(raw, good)


@pytest.fixture(scope="module")
def g2net_in_memory(g2net_bad, tmp_path_factory):
    out = tmp_path_factory.mktemp("flink_g2net_in_memory") / "ds"
    return _run_chain("run_configs/demo.yaml", G2NET_OVERRIDES, g2net_bad[0], out, load_profile(LOCAL))


def _assert_corpus_outcomes(out: Path, expected: dict[str, str]) -> None:
    """Every corpus case written or rejected with its own reason; seen = written + rejected in every stage."""
    rejected = _rows(out / "rejected", "build.csv")
    written = {row["uid"] for row in _rows(out / "tfrecords")}
    wrong = {}
    for uid, outcome in expected.items():
        reasons = [r["reason"] for r in rejected if uid in r["uid_or_path"]]
        if outcome in (WRITTEN, OUTLIER_IN_STATS):
            got = WRITTEN if uid in written and not reasons else f"rejected {reasons}"
            outcome = WRITTEN
        else:
            got = reasons[0] if len(reasons) == 1 and uid not in written else f"written={uid in written} {reasons}"
        if got != outcome:
            wrong[uid] = (outcome, got)
    assert wrong == {}
    row_reasons = Counter(r["reason"] for r in rejected if r["uid_or_path"].startswith("labels:"))
    assert row_reasons == {MALFORMED_ROW: 1, UNDECODABLE_ROW: 1}
    for name, stage in json.loads((out / "manifest.json").read_text())["stages"].items():
        if "seen" in stage:
            assert stage["seen"] == stage["written"] + stage["rejected"], name
            assert sum(stage.get("rejected_by_reason", {}).values()) == stage["rejected"], name


# ---- the chain on Flink --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_g2net_chain_with_bad_inputs_on_flink(job_endpoint, g2net_bad, g2net_in_memory, tmp_path):
    raw, expected = g2net_bad
    beam_args = _on_flink(job_endpoint, "--environment_type=LOOPBACK")
    out = _run_chain("run_configs/demo.yaml", G2NET_OVERRIDES, raw, tmp_path / "ds", beam_args)
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert set(stages) == {"build", "split", "analyze", "normalize", "filter"}
    _assert_corpus_outcomes(out, expected)
    assert_same_dataset(out, g2net_in_memory, group_column="source_id")


@pytest.fixture(scope="module")
def tce_raw(tmp_path_factory):
    """Four generated stars (planet, eclipsing binary, noise, mixed), a corrupt FITS file, a malformed TCE row."""
    raw = tmp_path_factory.mktemp("flink_tce_raw")
    tce_sample.write_tce_sample(str(raw), n_targets=4, seed=3, quarters=2, days_per_quarter=20.0)
    (raw / "bad").mkdir()
    (raw / "bad" / "kplr009000002-q01_llc.fits").write_bytes(b"not a FITS file " * 400)
    with open(raw / "tces.csv", "a") as handle:
        handle.write("7000009,1,2.0\n")  # 3 fields
    return raw


@pytest.mark.slow
def test_tce_chain_on_flink_with_an_external_worker_pool(job_endpoint, tce_raw, tmp_path):
    """SDK workers in the processes of Beam's worker pool (EXTERNAL), as beside a cluster's task managers. An
    environment is kept for the next stage of the same job (environment_cache_millis), as in the Flink profiles:
    without it each stage of a job started and stopped a worker process of its own."""
    reference = _run_chain("run_configs/tce_kepler.yaml", TCE_OVERRIDES, tce_raw, tmp_path / "ref", [])
    with worker_pool(tmp_path) as (address, log):
        beam_args = _on_flink(job_endpoint, "--environment_type=EXTERNAL", f"--environment_config={address}")
        beam_args.append("--environment_cache_millis=60000")
        out = _run_chain("run_configs/tce_kepler.yaml", TCE_OVERRIDES, tce_raw, tmp_path / "ds", beam_args)
        assert "Starting worker with command" in log.read_text()  # the workers were the pool's processes
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    assert build["rejected"] >= 2 and build["written"] > 0  # the corrupt file and the malformed row
    assert_same_dataset(out, reference, group_column=None)


def _children_running(jar: Path) -> list[int]:
    """Live child processes of this one whose command line names ``jar``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == os.getpid() and str(jar).encode() in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.slow
def test_flink_local_profile_runs_a_stage_through_the_cli(g2net_bad, g2net_in_memory, tmp_path):
    """`sigforge build --profile run_configs/flink_local.yaml`: Beam's FlinkRunner finds the job server jar from
    the profile, starts it with `java -jar` and runs the stage on it; the output is the in-memory build's."""
    if not JOB_SERVER_JAR.is_file():
        pytest.fail(f"{JOB_SERVER_JAR} is missing: run `make engines` (or `make install`)")
    before = set(_children_running(JOB_SERVER_JAR))
    out = tmp_path / "ds"
    argv = ["build", "--config", "run_configs/demo.yaml", "--input", str(g2net_bad[0]), "--output", str(out)]
    argv += ["--profile", FLINK_LOCAL, "--set", "build.examples_per_shard=16"]
    try:
        assert cli.main(argv) == 0
        started = set(_children_running(JOB_SERVER_JAR)) - before
        assert started, "the FlinkRunner did not start the job server from the profile's jar"
    finally:  # Beam stops the job servers it started when the process exits; this one is not needed any more
        for pid in set(_children_running(JOB_SERVER_JAR)) - before:
            os.kill(pid, signal.SIGTERM)
    got, expected = _stage_entries(out)["build"], _stage_entries(g2net_in_memory)["build"]
    assert {k: got[k] for k in ("seen", "written", "rejected", "rejected_by_reason")} == {
        k: expected[k] for k in ("seen", "written", "rejected", "rejected_by_reason")
    }
    assert _records(out, "tfrecords") == _records(g2net_in_memory, "tfrecords")
    assert _table_rows(out, "tfrecords") == _table_rows(g2net_in_memory, "tfrecords")
    assert _rejections(out)["build.csv"] == _rejections(g2net_in_memory)["build.csv"]


@pytest.mark.slow
def test_a_stage_that_fails_on_flink_publishes_nothing(job_endpoint, g2net_raw, tmp_path, monkeypatch):
    """A stage whose Flink job fails (here the shard writer raises in the SDK worker) leaves only its .tmp_
    folder: no output folder, no manifest entry, no lock."""
    from beam_pipelines.io import sink
    from beam_pipelines.stages.build import run_build

    def dying(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(sink, "name_parts", dying)  # LOOPBACK: the SDK worker runs in this process
    config = load_config(DatasetConfig, "run_configs/g2net.yaml")
    out = tmp_path / "ds"
    with pytest.raises(Exception, match="(?s)failed.*worker killed"):
        run_build(config, str(g2net_raw), str(out), _on_flink(job_endpoint, "--environment_type=LOOPBACK"))
    assert manifest.read_manifest(str(out))["stages"] == {}
    assert not (out / "tfrecords").exists() and not (out / ".sigforge.lock").exists()
    left = [p.name for p in out.iterdir()]  # at most the marker that claims the folder and an empty manifest
    assert all(name.startswith(".tmp_") or name in ("manifest.json", ".sigforge") for name in left), left
