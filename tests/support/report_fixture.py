"""Datasets built once per session by the real ``sigforge`` command (a subprocess, as a user runs it), for the
report, skew and quiet-log tests. Each build keeps the command's stderr so tests can read what a user saw."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO

_CACHE: dict[str, Built] = {}


@dataclass(frozen=True)
class Built:
    raw: Path
    out: Path
    stderr: str  # of `sigforge run`
    report_stderr: str = ""  # of `sigforge report`, when the run had --no-report


def sigforge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs ``python -m beam_pipelines.commands.cli ARGS`` from the repository root; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "beam_pipelines.commands.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def build(name: str, root: Path, sample: list[str], run: list[str]) -> Built:
    """``sigforge make-sample ...`` then ``sigforge run ...`` into ``root/name``, once per session and name; with
    ``--no-report`` in ``run``, then ``sigforge report OUT``."""
    if name not in _CACHE:
        raw, out = root / f"{name}_raw", root / f"{name}_out"
        made = sigforge("make-sample", *sample, str(raw))
        assert made.returncode == 0, made.stderr
        ran = sigforge("run", *run, "--input", str(raw), "--output", str(out))
        assert ran.returncode == 0, ran.stderr
        report = ""
        if "--no-report" in run:
            assert not (out / "report").exists(), "--no-report writes no report"
            reported = sigforge("report", str(out))
            assert reported.returncode == 0, reported.stderr
            report = reported.stderr
        _CACHE[name] = Built(raw, out, ran.stderr, report)
    return _CACHE[name]


def g2net(root: Path) -> Built:
    """48 G2Net samples, 2 per source, with the injection truth in the data tables (run_configs/demo.yaml); run
    with ``--no-report``, the report written by ``sigforge report``."""
    return build(
        "g2net",
        root,
        ["g2net", "--n", "48", "--seed", "3", "--signals-per-source", "2"],
        ["--config", "run_configs/demo.yaml", "--no-report"],
    )


def tce(root: Path, mode: str = "transits") -> Built:
    """A 12-target Kepler-format sample through the light-curve recipe in ``mode`` (transits or views)."""
    return build(
        f"tce_{mode}",
        root,
        ["tce", "--n", "12", "--seed", "2"],
        ["--config", "run_configs/tce_kepler.yaml", "--set", f"tce.mode={mode}"],
    )
