"""Which folders sigforge may write into, and which of their files it may delete (docs/reliability.md).

* A stage writes only into a folder that does not exist, is empty (but for the lock file), or is a sigforge
  dataset: it holds the marker ``OUT/.sigforge`` (written by the first stage) or a ``manifest.json``. Anything
  else is refused (code ``not_a_dataset``) before the lock file is created.
* ``--overwrite`` deletes only what sigforge published: the paths recorded in the manifest per stage
  (``stages.<stage>.published``, and ``publishing`` while a stage moves its folders into place), and a
  ``report/`` that holds the report's marker. A path that sigforge did not publish is refused (code
  ``not_ours``), never deleted. A manifest written before these records existed (no ``ownership`` key) claims
  the outputs of the stages it lists, and ``report/``.
* The raw input and the dataset folder never overlap (equal, either inside the other, symlinks resolved; code
  ``overlap``), so no stage writes into or deletes its own input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import StageError
from transforms.contract import MANIFEST, REPORT_DIR, STAGE_OUTPUTS
from transforms.lockfile import LOCK_FILE

MARKER = ".sigforge"
REPORT_MARKER = ".sigforge_report"
OWNERSHIP = "ownership"  # manifest key: its value is the version of the published-path records (1)
PUBLISHING = "publishing"  # manifest key: {"stage": ..., "paths": [...]} while a stage publishes
_SHOWN = 5


def _entries(out: str) -> list[str]:
    """Names directly in ``out`` (locally) or a few object names below it (object stores)."""
    if fs.is_local(out):
        local = out.removeprefix("file://")
        return sorted(os.listdir(local)) if os.path.isdir(local) else []
    found = FileSystems.match([out.rstrip("/") + "/**"], limits=[_SHOWN + 2])[0].metadata_list
    prefix = out.rstrip("/") + "/"
    return sorted({meta.path[len(prefix) :].split("/", 1)[0] for meta in found})


def check_folder(out: str) -> None:
    """StageError (code ``not_a_dataset``) unless ``out`` is missing, empty or a sigforge dataset."""
    local = out.removeprefix("file://")
    if fs.is_local(out) and os.path.exists(local) and not os.path.isdir(local):
        raise StageError(f"--output {out} is a file, not a folder", code="not_a_dataset")
    entries = [name for name in _entries(out) if name != LOCK_FILE]
    if not entries or MARKER in entries or MANIFEST in entries:
        return
    shown = ", ".join(entries[:_SHOWN]) + (", ..." if len(entries) > _SHOWN else "")
    raise StageError(
        f"{out} is not a sigforge dataset folder (no {MARKER} marker, no {MANIFEST}) and is not empty (it holds "
        f"{shown}): sigforge writes only into a new or empty folder or one of its own datasets, so that nothing "
        "of yours is replaced or deleted. Choose another --output",
        code="not_a_dataset",
    )


def mark(out: str) -> None:
    """Writes ``OUT/.sigforge`` (once): from here on ``out`` is a sigforge dataset folder."""
    path = fs.join(out, MARKER)
    if not fs.exists(path):  # the same bytes every time: reruns stay byte-identical (tests/e2e/test_determinism.py)
        fs.makedirs(out)
        fs.write_text(path, json.dumps({"sigforge_dataset": True, "see": "docs/reliability.md"}) + "\n")


def _real(path: str) -> str:
    absolute = fs.absolute(path)
    return os.path.realpath(absolute) if fs.is_local(absolute) else absolute


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_no_overlap(out: str, input_dir: str | None) -> None:
    """StageError (code ``overlap``) when the dataset folder and the raw input folder are the same folder or
    one lies inside the other (local paths with symlinks resolved)."""
    if not input_dir:
        return
    real_out, real_in = _real(out), _real(input_dir)
    if real_out == real_in:
        how = "are the same folder (overlap)"
    elif _inside(real_out, real_in):
        how = "overlap: the output lies inside the input"
    elif _inside(real_in, real_out):
        how = "overlap: the input lies inside the output"
    else:
        return
    raise StageError(
        f"--input {input_dir} and --output {out} {how}; a stage "
        "would read its own files or replace its input. Use an output folder outside the input, and no input "
        "inside the output",
        code="overlap",
    )


def recorded_input(manifest: Mapping[str, Any]) -> str | None:
    """The build's raw input folder as the manifest records it (None before build)."""
    return manifest.get("stages", {}).get("build", {}).get("input_dir")


def claimed(out: str, manifest: Mapping[str, Any]) -> set[str]:
    """The paths (relative to ``out``, folders ending in ``/``) that sigforge published into ``out``."""
    stages = manifest.get("stages", {})
    paths: set[str] = set()
    legacy = OWNERSHIP not in manifest
    for name, entry in stages.items():
        recorded = entry.get("published") if isinstance(entry, dict) else None
        if recorded is not None:
            paths.update(recorded)
        elif legacy:
            paths.update(STAGE_OUTPUTS.get(name, ()))
    paths.update(manifest.get(PUBLISHING, {}).get("paths", []))
    if (legacy and stages) or fs.exists(fs.join(out, REPORT_DIR, REPORT_MARKER)):
        paths.add(REPORT_DIR + "/")
    return paths


def _holds_something(path: str) -> bool:
    """True for a file or a folder with anything in it (an empty folder, such as a report that failed before
    its first file, has nothing to lose and never blocks a rerun)."""
    if not fs.exists(path):
        return False
    local = path.removeprefix("file://")
    return not (fs.is_local(path) and os.path.isdir(local) and not os.listdir(local))


def check_ours(out: str, manifest: Mapping[str, Any], relative: Iterable[str], why: str) -> None:
    """StageError (code ``not_ours``) naming every existing path of ``relative`` that sigforge did not publish."""
    mine = claimed(out, manifest)
    foreign = [rel for rel in relative if rel not in mine and _holds_something(fs.join(out, rel.rstrip("/")))]
    if foreign:
        raise StageError(
            f"{out} holds {', '.join(foreign)}, which sigforge did not publish (the manifest does not list it), "
            f"so {why} would replace files that are not sigforge's; nothing was changed. Move "
            f"{'them' if len(foreign) > 1 else 'it'} out of {out} and rerun",
            code="not_ours",
        )


def check_deletable(out: str, path: str, input_dir: str | None) -> None:
    """The last guard before ``--overwrite`` deletes ``path``: never the raw input, inside or above it."""
    if input_dir and (_inside(_real(path), _real(input_dir)) or _inside(_real(input_dir), _real(path))):
        raise StageError(
            f"--overwrite would delete {path}, which is or holds the raw input {input_dir} (overlap); nothing "
            "was deleted",
            code="overlap",
        )
