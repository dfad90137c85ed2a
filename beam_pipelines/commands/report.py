"""``sigforge report OUT`` and ``sigforge audit --skew``: the dataset report and split-skew check over Beam
``FileSystems`` (``transforms.report`` does the work; this module only logs)."""

from __future__ import annotations

import contextlib
import json
import logging

from beam_pipelines.dataset import fs, manifest, ownership
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.dataset.lock import check_unlocked, dataset_lock
from transforms.contract import MANIFEST, REPORT_DIR
from transforms.report.page import write_report
from transforms.report.skew import DEFAULT_ALPHA, DEFAULT_THRESHOLD, dataset_skew

_LOG = logging.getLogger("sigforge.report")


def _require_manifest(out: str) -> None:
    path = fs.join(out, MANIFEST)
    if not fs.exists(path):
        raise StageError(f"{out}: no {MANIFEST} (not a sigforge dataset folder?)")
    try:
        json.loads(fs.read_text(path))
    except (ValueError, OSError) as error:
        raise StageError(f"{path} is not readable JSON: {error}") from None


def run_report(
    out: str, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA, ignore_lock: bool = False
) -> str:
    """Writes ``OUT/report/`` and returns the page's path; logs every flagged split skew as a warning.

    Raises StageError (one line, exit 2 in the CLI) when ``out`` holds no readable ``manifest.json``, when
    another run holds its lock (code ``locked``: the report writes into ``out``, so it takes the lock), or when
    ``OUT/report/`` exists but is not sigforge's (code ``not_ours``: no report marker in it). With
    ``ignore_lock`` a live run's lock is a WARNING, and the report is written without taking it.
    """
    _require_manifest(out)
    if ignore_lock:
        check_unlocked(out, "report", ignore=True)
    with contextlib.nullcontext() if ignore_lock else dataset_lock(out, "sigforge report"):
        ownership.check_ours(out, manifest.read_manifest(out), [REPORT_DIR + "/"], "the report")
        fs.makedirs(fs.join(out, REPORT_DIR))
        fs.write_text(fs.join(out, REPORT_DIR, ownership.REPORT_MARKER), "written by sigforge report\n")
        report = write_report(out, fs, threshold, alpha)
    for result in report.flagged:
        _LOG.warning("split skew: %s", result.describe())
    _LOG.info("report: %s (%d figures, %d skew flags)", report.path, len(report.figures), len(report.flagged))
    return report.path


def run_skew_check(out: str, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> int:
    """Logs every flagged train-vs-split comparison as an error; 1 when any, else 0."""
    results = dataset_skew(out, fs, threshold, alpha)
    flagged = [result for result in results if result.flagged]
    for result in flagged:
        _LOG.error("split skew: %s", result.describe())
    if flagged:
        _LOG.error("split skew: %d of %d comparisons flagged in %s", len(flagged), len(results), out)
        return 1
    _LOG.info("split skew: none in %d comparisons (KS D > %s and p < %s / n)", len(results), threshold, alpha)
    return 0
