"""The audit's independent count of the raw inputs: every input the build could see is written or rejected.

The manifest's counts (seen = written + rejected) can be edited together with the outputs; the raw input folder
cannot. For a recipe with an ``input_ids(config, input_dir, fs)`` hook (one id per raw input, e.g. G2Net's
``.npy`` files), the audit re-lists the inputs under the build's recorded ``input_dir`` and requires each id to
be a written example (a uid of the raw data tables) or a rejection (an id or a path of ``rejected/build.csv``).
A recipe whose inputs are not one example each (TCE: a table row becomes several transits, a file serves a star)
has the general hook ``unaccounted_inputs(config, input_dir, fs, written_rows, rejected_rows)`` instead: it gets
the raw data-table rows and the rejection rows and names every input that is neither
(``transforms/recipes/tce/recount.py``). An example, a TCE or a star removed from every stage with every count
adjusted is found here. When ``input_dir`` is not
reachable from where the audit runs, the check is skipped with an info line (it cannot be decided).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

from transforms import listing
from transforms.contract import RAW_DIR, REJECTED_DIR, TABLE_PATTERN, sample_id
from transforms.csv_cells import restore_row

_LOG = logging.getLogger(__name__)
SHOWN = 5


def glob_regex(pattern: str) -> re.Pattern:
    """Beam's file-pattern rules: ``**`` matches across folders, ``*`` and ``?`` within one name."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    table = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(part, re.escape(part)) for part in parts) + r"\Z")


def list_matching(fs: Any, folder: str, pattern: str) -> list[str]:
    """Every file below ``folder`` whose path relative to it matches the glob ``pattern``."""
    return match_inputs(fs, folder, pattern)[0]


def match_inputs(fs: Any, folder: str, pattern: str) -> tuple[list[str], list[str]]:
    """The files below ``folder`` whose path relative to it matches the glob ``pattern``, and the folders the
    build could not list or follow (each must be a rejection of its own). A local folder is listed as the build
    lists it (``transforms.listing.walk`` from the pattern's root: symlinked folders followed, loops and
    unreadable folders reported); an object store through ``fs.list_tree``."""
    regex = glob_regex(pattern)
    base = folder.rstrip("/") + "/"
    if "://" in folder and not folder.startswith("file://"):
        paths, unlisted = fs.list_tree(folder), []
    else:
        local = base.removeprefix("file://")
        full = local + pattern
        root = listing.glob_root(full) if "*" in pattern or "?" in pattern else os.path.dirname(full) or "."
        entries, faults = listing.walk(root)
        paths = [base + entry.path[len(local) :] for entry in entries if not entry.is_folder]
        unlisted = [fault.path for fault in faults]
    return [path for path in paths if path.startswith(base) and regex.match(path[len(base) :])], unlisted


def _rejected_rows(fs: Any, out: str) -> list[dict[str, str]]:
    path = fs.join(out, REJECTED_DIR, "build.csv")
    if not fs.exists(path):
        return []
    return [restore_row(row) for row in csv.DictReader(io.StringIO(fs.read_text(path)))]


def _raw_rows(fs: Any, out: str) -> list[dict[str, str]]:
    """Every row of the raw data tables (``OUT/tfrecords/data_tbl_*.csv``)."""
    rows: list[dict[str, str]] = []
    for path in fs.glob(fs.join(out, RAW_DIR, TABLE_PATTERN)):
        rows += csv.DictReader(io.StringIO(fs.read_text(path)))
    return rows


def _rejected_ids(fs: Any, out: str, suffix: str) -> set[str]:
    """Ids and paths named by ``rejected/build.csv`` (a duplicate id lists its paths joined by ``;``)."""
    named: set[str] = set()
    for row in _rejected_rows(fs, out):
        for part in row.get("uid_or_path", "").split(";"):
            named.update((part, sample_id(part, suffix)))
    return named


def check_inputs_accounted(fs: Any, out: str, manifest: dict[str, Any], written_uids: Iterable[str]) -> list[str]:
    """Problems: raw inputs under the build's ``input_dir`` that are neither written nor rejected."""
    from transforms.config import ConfigError, DatasetConfig, validate
    from transforms.recipes import REGISTRY

    build = manifest.get("stages", {}).get("build", {})
    raw_config = manifest.get("config")
    input_dir = build.get("input_dir")
    if not raw_config or not input_dir:
        return []
    if "://" not in input_dir:  # recorded absolute since the build normalizes it; older manifests may hold "~"
        input_dir = os.path.expanduser(input_dir)
    recipe = REGISTRY.get(raw_config.get("recipe", ""))
    general, input_ids = getattr(recipe, "unaccounted_inputs", None), getattr(recipe, "input_ids", None)
    if general is None and input_ids is None:
        return []
    if not fs.exists(input_dir):
        _LOG.info("audit: the build's input folder %s is not reachable here; inputs not recounted", input_dir)
        return []
    try:
        config = validate(DatasetConfig, raw_config, f"{out} manifest 'config'")
    except ConfigError as error:
        return [f"build: the manifest's config does not validate: {error}"]
    if general is not None:
        missing = general(config, input_dir, fs, _raw_rows(fs, out), _rejected_rows(fs, out))
    else:
        suffix = getattr(recipe.serving, "input_suffix", "") if recipe.serving is not None else ""
        accounted = set(written_uids) | _rejected_ids(fs, out, suffix)
        missing = sorted({uid for uid in input_ids(config, input_dir, fs) if uid not in accounted})
    if not missing:
        return []
    shown = ", ".join(missing[:SHOWN]) + (" ..." if len(missing) > SHOWN else "")
    return [
        f"build: {len(missing)} input(s) under {input_dir} are neither written nor rejected ({shown}): "
        "an example was lost or removed after the build"
    ]
