"""``sigforge audit OUT``: the dataset audit (``transforms.audit``) over Beam ``FileSystems``, for the CLI."""

from __future__ import annotations

import logging

from beam_pipelines import fs
from transforms import audit

_LOG = logging.getLogger(__name__)


def run_audit(out: str, group_column: str | None = None) -> int:
    """CLI helper: logs every problem and returns 1 when there are any, else 0."""
    problems = audit.audit_dataset(out, group_column, fs=fs)
    for problem in problems:
        _LOG.error("audit: %s", problem)
    if problems:
        _LOG.error("audit: %d problems in %s", len(problems), out)
        return 1
    _LOG.info("audit: %s is clean", out)
    return 0
