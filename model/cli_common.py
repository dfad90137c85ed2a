"""What the trainer's command lines share (``model.train``, ``model.evaluate``, ``model.predict``)."""

from __future__ import annotations

import argparse
import logging

from transforms.errors import OsFault, SigforgeError, interruption, os_fault


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )


def setup_logging(level: str) -> None:
    """Timestamped logging at ``level``; absl (TensorFlow's Python logger) no chattier than WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(max(logging.WARNING, logging.getLogger().level))


def fault(error: BaseException) -> SigforgeError | None:
    """The one-line refusal an exception stands for (``main`` logs it and returns 2), or None for a bug (raised
    on, with its traceback): a SigforgeError itself; an OS fault (an OSError, or TensorFlow's file errors:
    permission denied, not found, out of space; code ``os_error``); SIGINT or SIGTERM (code ``interrupted``)."""
    if isinstance(error, SigforgeError):
        return error
    found = interruption(error) or os_fault(error)
    if found is None and type(error).__name__ in _TF_FILE_ERRORS and type(error).__module__.startswith("tensorflow"):
        found = OsFault(f"{getattr(error, 'message', str(error))} ({type(error).__name__}); fix the cause and rerun")
    return found


_TF_FILE_ERRORS = frozenset(("PermissionDeniedError", "NotFoundError", "ResourceExhaustedError", "AlreadyExistsError"))
