"""One stage runner: begin, pipeline(s), summary read-back and atomic publish, the same for every stage.

A stage supplies only its ``work(ctx)``: it builds its pipeline(s) with ``ctx.pipeline()`` (tf.Transform's
context included when asked), writes its counts with ``ctx.summary()``, and returns its manifest entry, usually
from ``ctx.counts()``. The runner checks the stage may run (``manifest.begin_stage``), times it, logs one
summary line and publishes (``manifest.finish_stage``). See docs/ARCHITECTURE.md section 2.

In a dry run (Beam's ``--dry_run=True``, ``sigforge ... --dry-run``) ``ctx.plans`` is set: ``ctx.pipeline()``
builds each pipeline and writes it to the plans folder instead of running it, and the stage returns right after
building (``beam_pipelines/runtime/dry_run.py``); nothing is locked, read back or published.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from beam_pipelines.dataset import fs, manifest, ownership
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.dataset.lock import dataset_lock, verify
from beam_pipelines.io import progress
from beam_pipelines.io.counting import SUMMARY_FILE, Counts, WriteSummary
from beam_pipelines.runtime import dry_run
from beam_pipelines.runtime.options import FN_API_RUNNER, make_pipeline_options

_LOG = logging.getLogger(__name__)


class StageContext:
    """What a stage's work needs: its temporary folder, pipelines with the run's Beam options, its summary."""

    def __init__(self, run: manifest.StageRun, beam_args: list[str] | None, plans: dry_run.Plans | None = None):
        self.run = run
        self.beam_args = beam_args
        self.plans = plans  # set in a dry run: pipelines are built and written there, never run
        self.manifest_keys: dict[str, Any] = {}  # top-level manifest keys the stage records (build: ``inputs``)
        self._runner: str | None = None

    @property
    def tmp(self) -> str:
        return self.run.tmp

    def tmp_path(self, relative: str) -> str:
        return self.run.tmp_path(relative)

    @property
    def local(self) -> bool:
        """True when the pipelines run on the local FnApiRunner (in memory or multi-processing)."""
        if self._runner is None:
            self._runner = str(make_pipeline_options(self.beam_args).view_as(StandardOptions).runner)
        return self._runner == FN_API_RUNNER

    def progress(self) -> beam.PTransform:
        """The pass-through step a stage applies to its main input so that its progress is reported (a
        heartbeat on local runners; nothing on remote ones, whose UI shows progress)."""
        if self.local:
            return progress.Heartbeat(progress.heartbeat_dir(self.tmp))
        progress.log_remote_once(self._runner or "")
        return progress.PassThrough()

    @contextlib.contextmanager
    def pipeline(self, tft: bool = False, total: int | None = None, label: str = "") -> Iterator[beam.Pipeline]:
        """A pipeline that runs when the block exits; ``tft=True`` also enters tf.Transform's context (TF1
        graphs so named analyzer results read back exactly, temp files under the stage's folder). While it runs,
        the elements counted by ``ctx.progress()`` steps are reported (of ``total`` when known)."""
        if self.plans is not None:  # a dry run: built, then written to the plans folder (Dataflow: dry_run)
            options = make_pipeline_options(self.beam_args)
            self.plans.check_options(options)
            pipeline = beam.Pipeline(options=options)
            with self._tft_context(tft):
                yield pipeline
            self.plans.record(self.run.stage, pipeline, options)
            return
        monitor = (
            progress.ProgressMonitor(progress.heartbeat_dir(self.tmp), label or self.run.stage, total)
            if self.local
            else contextlib.nullcontext()
        )
        with monitor, beam.Pipeline(options=make_pipeline_options(self.beam_args)) as pipeline:
            with self._tft_context(tft):
                yield pipeline

    @contextlib.contextmanager
    def _tft_context(self, tft: bool) -> Iterator[None]:
        if not tft:
            yield
            return
        import tensorflow_transform.beam as tft_beam

        temp_dir = self.tmp_path("tft_tmp") if self.plans is None else self.plans.tft_temp_dir()
        with tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=True):
            yield

    def summary(self) -> WriteSummary:
        """The sink of the stage's ``(key, n)`` count pairs."""
        return WriteSummary(self.tmp_path(SUMMARY_FILE))

    def counts(self) -> Counts:
        """The summary the pipeline wrote."""
        return Counts.read(self.tmp_path(SUMMARY_FILE))


def check_read_all(what: str, seen: int, expected: int | None, source: str) -> None:
    """StageError unless ``what`` read as many examples (``seen``) as ``source`` wrote (``expected``; None: no
    count to compare with): a runner that lost or repeated elements stops the stage before it publishes."""
    if expected is not None and seen != expected:
        raise StageError(
            f"{what} read {seen} examples, {source} wrote {expected} (the runner lost or repeated elements); "
            "nothing was published",
            code="count_mismatch",
        )


def split_mode(out: str, config: Any, stage: str) -> str:
    """The mode the split stage of ``out`` ran in (``hash`` when it records none, or has not run); StageError
    (code ``split_mode``) when ``config`` asks for another one: a later stage reads the split as it was made.
    A dry run reads no manifest: the config's mode."""
    if dry_run.active() is not None:
        return config.split.mode
    entry = manifest.read_manifest(out).get("stages", {}).get("split")
    if entry is None:
        return config.split.mode
    recorded = entry.get("mode", "hash")
    if recorded != config.split.mode:
        raise StageError(
            f"{stage}: the split of {out} was made in split.mode {recorded}, the config says {config.split.mode}; "
            "use the split's config (or rerun split with --overwrite)",
            code="split_mode",
        )
    return recorded


def run_stage(
    stage: str,
    out: str,
    work: Callable[[StageContext], dict[str, Any]],
    *,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    requires: str | None = None,
    config: Any = None,
    check: Callable[[dict[str, Any]], None] | None = None,
    input_dir: str | None = None,
) -> dict[str, Any]:
    """Runs ``work`` as stage ``stage`` on the dataset folder ``out`` and returns the updated manifest.

    The stage holds the folder's exclusive lock (``beam_pipelines/dataset/lock.py``; re-entrant inside
    ``sigforge run``).
    ``config`` (a DatasetConfig) is the config the stage runs with: build records it in the manifest as resolved
    (``config``); every stage records its ``config_sha256`` and, after build, its ``config_changes`` against the
    build's (``manifest.stage_config_entry``), so a stage rerun with other ``--set`` values says so.
    ``check(summary)``, when given, inspects the stage's own output before it is published and raises StageError
    when it is wrong (non-finite, degenerate, counts that do not add up). Nothing is published unless ``work``
    returns and the check passes: a failed or interrupted pipeline or check removes the stage's ``.tmp_`` folder
    (a killed one leaves it, and the next stage on ``out`` removes it). ``input_dir`` (build's raw input; the
    other stages use the one the manifest records) must not overlap ``out``; ``out`` must be sigforge's
    (``beam_pipelines/dataset/ownership.py``), checked before the lock file is written into it.
    """
    if dry_run.requested(beam_args):
        return _plan_stage(stage, out, work, beam_args)
    resolved = config.model_dump(mode="json") if config is not None else None
    ownership.check_no_overlap(out, input_dir)
    ownership.check_folder(out)
    with dataset_lock(out, f"sigforge {stage}"):
        recorded = manifest.stage_config_entry(out, stage, resolved) if resolved is not None else {}
        run = manifest.begin_stage(
            out, stage, overwrite, requires=requires, owner_check=lambda: verify(out), input_dir=input_dir
        )
        try:
            started = time.monotonic()
            ctx = StageContext(run, beam_args)
            summary = work(ctx)
            fs.delete_tree(run.tmp_path("tft_tmp"))
            summary["seconds"] = round(time.monotonic() - started, 2)
            _LOG.info("%s: %s", stage, _one_line(summary))
            if check is not None:
                check(summary)
            summary.update(recorded)
            return manifest.finish_stage(
                run, summary, config=resolved if stage == "build" else None, extra=ctx.manifest_keys
            )
        except BaseException:
            _remove_quietly(run.tmp)  # nothing of a failed stage stays to block or confuse the rerun
            raise


def _remove_quietly(folder: str) -> None:
    """Deletes ``folder`` on the way out of a failed stage; a failure to delete (the disk that failed the stage)
    is logged, never raised over the stage's own error."""
    try:
        fs.delete_tree(folder)
    except Exception as error:  # noqa: BLE001  (the stage's own error is the one to report)
        _LOG.warning("could not remove %s (%s); the next stage on this folder removes it", folder, error)


def _plan_stage(
    stage: str, out: str, work: Callable[[StageContext], dict[str, Any]], beam_args: list[str] | None
) -> dict[str, Any]:
    """A dry run of ``stage``: ``work`` builds its pipelines into the plans folder; no lock, no ``.tmp_`` folder,
    no summary read back, no check, nothing published. Returns ``{"stages": {stage: {"dry_run", "plans",
    "seconds"}}}`` (the manifest's shape, written nowhere)."""
    with dry_run.session(out) as plans:
        started = time.monotonic()
        work(StageContext(manifest.StageRun(out, stage), beam_args, plans))
        entry = {"dry_run": True, "plans": plans.names(stage), "seconds": round(time.monotonic() - started, 2)}
    _LOG.info("%s: dry run, %d pipeline(s) built in %.1f s", stage, len(entry["plans"]), entry["seconds"])
    return {"stages": {stage: entry}}


def _one_line(summary: dict[str, Any]) -> str:
    parts = [f"{key}={summary[key]}" for key in ("seen", "written", "rejected", "train_examples") if key in summary]
    if summary.get("rejected_by_reason"):
        parts.append(f"rejected_by_reason={summary['rejected_by_reason']}")
    if "splits" in summary:
        parts.append("examples=" + str({s: v.get("examples") for s, v in summary["splits"].items()}))
    parts.append(f"{summary['seconds']:.1f} s")
    if summary.get("written") and summary["seconds"] > 0:
        parts.append(f"{summary['written'] / summary['seconds']:.1f} examples/s")
    return ", ".join(parts)
