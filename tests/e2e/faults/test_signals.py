"""SIGINT and SIGTERM in the middle of ``sigforge run``: one line, exit 2, the lock released, the stage's
``.tmp_`` folder removed, and the rerun works. The command runs as a subprocess (the real executable, with its
signal handlers) on a generated sample; the signal is sent once the build stage has begun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beam_pipelines.commands import cli
from beam_pipelines.dataset import lock
from transforms.recipes.g2net import sample as gw_sample

REPO = Path(__file__).resolve().parents[3]
DEMO = "run_configs/demo.yaml"


@pytest.fixture(scope="module")
def raw200(tmp_path_factory):
    raw = tmp_path_factory.mktemp("signals") / "raw"
    gw_sample.write_g2net_sample(str(raw), n=200, seed=2)
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_is_one_line_and_leaves_nothing(signum, raw200, tmp_path):
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "beam_pipelines.commands.cli", "run", "--config", DEMO, "--input", str(raw200)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [*command, "--output", str(out), "--no-report"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 400
        while not (out / ".tmp_build").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the build never began"
            time.sleep(0.05)
        time.sleep(1.0)  # inside the build's pipeline
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert proc.returncode == 2, stderr[-3000:]
    assert "Traceback" not in stderr and len(errors) == 1, stderr[-3000:]
    assert f"interrupted by {signal.Signals(signum).name}" in errors[0]
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert lock.LOCK_FILE not in left and not [name for name in left if name.startswith(".tmp_")], left
    if signum == signal.SIGTERM:  # nothing blocks the rerun
        assert cli.main(["run", "--config", DEMO, "--input", str(raw200), "--output", str(out), "--overwrite"]) == 0
