"""Folders of the repository the tests read: the root (the working directory of the commands they run), the
shipped run configs and the test data."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_CONFIGS = REPO / "run_configs"
DATA = REPO / "tests" / "data"
KEPLER90 = DATA / "kepler90"  # copy of ../shared/data/kepler90
