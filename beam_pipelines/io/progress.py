"""Progress of a running stage: worker heartbeats under the stage's tmp folder, summed by a driver thread.

Beam's FnApiRunner reports metrics only after a run, so progress is read from the pipeline itself while it runs:

- ``Heartbeat(folder)`` is a pass-through step on a stage's main input. Each DoFn instance counts its elements and,
  every ``heartbeat_s`` seconds and at the end of each bundle, writes ``{"count": n}`` to its own
  ``folder/<uuid>.json`` (through Beam ``FileSystems``). It works in-process and in
  ``--direct_running_mode=multi_processing`` workers alike, since the workers share the driver's disk.
- ``ProgressMonitor(folder, ...)`` is a driver thread that sums those files and reports at least every
  ``interval_s`` seconds: elements, elements per second, and an ETA where the stage knows its input size. On a
  terminal it draws a tqdm bar, otherwise it logs plain lines.

On remote runners (Dataflow, Flink, Portable) the heartbeat is left out and the monitor logs once that progress is
shown by the runner's UI. ``SIGFORGE_PROGRESS_S`` (seconds, default 10) sets the report interval.
See docs/ARCHITECTURE.md section 2.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid

import apache_beam as beam

from beam_pipelines.dataset import fs
from beam_pipelines.io.counting import weight

_LOG = logging.getLogger("sigforge.progress")

PROGRESS_DIR = "_progress"
INTERVAL_ENV = "SIGFORGE_PROGRESS_S"
DEFAULT_INTERVAL_S = 10.0


def interval_s() -> float:
    """The report interval: ``SIGFORGE_PROGRESS_S`` seconds (default 10; at least 0.1)."""
    try:
        return max(0.1, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def heartbeat_dir(stage_tmp: str) -> str:
    """The folder of a stage's heartbeat files: ``OUT/.tmp_<stage>/_progress``."""
    return fs.join(stage_tmp, PROGRESS_DIR)


class _HeartbeatFn(beam.DoFn):
    """Counts elements and writes the running count to this instance's own heartbeat file."""

    def __init__(self, folder: str, heartbeat_s: float):
        self._folder = folder
        self._heartbeat_s = heartbeat_s
        self._path = ""
        self._count = 0
        self._written_at = 0.0

    def setup(self):
        self._path = fs.join(self._folder, f"{uuid.uuid4().hex}.json")
        self._count = 0
        self._written_at = time.monotonic()

    def process(self, element):
        self._count += weight(element)  # a batch of n examples counts as n
        if time.monotonic() - self._written_at >= self._heartbeat_s:
            self._write()
        yield element

    def finish_bundle(self):
        self._write()

    def _write(self) -> None:
        self._written_at = time.monotonic()
        fs.write_text(self._path, json.dumps({"count": self._count}))


class Heartbeat(beam.PTransform):
    """Pass-through that counts the elements of a stage's main input into heartbeat files under ``folder``."""

    def __init__(self, folder: str, heartbeat_s: float | None = None):
        super().__init__()
        self._folder = folder
        self._heartbeat_s = heartbeat_s if heartbeat_s is not None else min(2.0, interval_s() / 2)

    def expand(self, elements):
        return elements | "CountElements" >> beam.ParDo(_HeartbeatFn(self._folder, self._heartbeat_s))


class PassThrough(beam.PTransform):
    """What a stage applies instead of ``Heartbeat`` on a remote runner: nothing."""

    def expand(self, elements):
        return elements


def read_count(folder: str, last: dict[str, int] | None = None) -> int:
    """The sum of the counts in ``folder``'s heartbeat files. A file caught mid-write counts with its last value
    read into ``last`` (path -> count), so the sum never goes backwards between two reads."""
    last = {} if last is None else last
    for path in fs.glob(fs.join(folder, "*.json")):
        try:
            last[path] = max(last.get(path, 0), int(json.loads(fs.read_text(path))["count"]))
        except (ValueError, KeyError, OSError):
            continue
    return sum(last.values())


def describe(label: str, count: int, total: int | None, seconds: float) -> str:
    """One progress line: ``label: 1200/4000 (30%), 85.0/s, ETA 33 s`` (no total: no percentage or ETA)."""
    rate = count / seconds if seconds > 0 else 0.0
    if total and count >= total:
        return f"{label}: all {total} read ({rate:.1f}/s), writing outputs, {seconds:.0f} s"
    if total:
        eta = f", ETA {(total - count) / rate:.0f} s" if rate > 0 else ""
        return f"{label}: {count}/{total} ({100.0 * count / total:.0f}%), {rate:.1f}/s{eta}, {seconds:.0f} s"
    return f"{label}: {count} elements, {rate:.1f}/s, {seconds:.0f} s"


def _sized_terminal() -> bool:
    """True when stderr is a terminal with a width (a bar on a zero-width pseudo-terminal would print nothing)."""
    try:
        return sys.stderr.isatty() and os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        return False


class ProgressMonitor:
    """Driver thread: sums ``folder``'s heartbeats and reports every ``interval`` seconds until stopped.

    Use as a context manager around the pipeline's run. ``bar=None`` draws a tqdm bar when stderr is a terminal
    (with a width), else logs lines.
    """

    def __init__(self, folder: str, label: str, total: int | None = None, interval: float | None = None, bar=None):
        self._folder = folder
        self._label = label
        self._total = total
        self._interval = interval if interval is not None else interval_s()
        self._bar = _sized_terminal() if bar is None else bar
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{label}", daemon=True)
        self._started = 0.0
        self.reports: list[str] = []

    def __enter__(self) -> ProgressMonitor:
        fs.delete_tree(self._folder)
        fs.makedirs(self._folder)
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        bar = None
        if self._bar:
            from tqdm import tqdm

            bar = tqdm(total=self._total, desc=self._label, unit="ex", leave=False, file=sys.stderr)
        poll = min(1.0, self._interval)
        reported = time.monotonic()
        seen: dict[str, int] = {}
        while not self._stop.wait(poll):
            count = read_count(self._folder, seen)
            now = time.monotonic()
            if bar is not None:
                bar.update(count - bar.n)
            elif now - reported >= self._interval:
                reported = now
                line = describe(self._label, count, self._total, now - self._started)
                self.reports.append(line)
                _LOG.info("%s", line)
        if bar is not None:
            bar.close()


_REMOTE_SAID: set[str] = set()  # the remote runners already told about, once per process


def log_remote_once(runner: str) -> None:
    """Logs once per runner that progress is shown by that runner's UI."""
    if runner not in _REMOTE_SAID:
        _REMOTE_SAID.add(runner)
        _LOG.info("progress of %s runs is shown by the runner's UI (sigforge reports it for local runs only)", runner)
