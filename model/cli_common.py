"""What the trainer's command lines share (``model.train``, ``model.evaluate``, ``model.predict``)."""

from __future__ import annotations

import argparse
import logging


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
