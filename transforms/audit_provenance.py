"""The audit's provenance checks (transforms/provenance.py): published files against their fingerprints, and
(``sigforge audit --inputs``) the raw input set against the one the build recorded.

``check_fingerprints``: every file in the manifest's ``fingerprints`` must still exist with that sha256, and no
file may have been added inside a folder a stage published (``tfrecords/``, ``split/``, ...). ``OUT/report/`` is
not a stage output and is not fingerprinted. A manifest without ``fingerprints`` (written before they existed)
is skipped with an info line.

``check_inputs``: the files the build's recipe reads under the recorded ``input_dir`` (``Recipe.input_patterns``:
its globs and CSVs) are listed and hashed again and compared with ``OUT/provenance/inputs.csv``, itself checked
against the manifest's ``inputs`` digest: every file whose content changed, that appeared or that vanished is
named, one problem each.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from transforms import provenance
from transforms.audit_inputs import list_matching
from transforms.contract import STAGE_OUTPUTS, STAGES
from transforms.provenance import FINGERPRINTS_KEY, INPUTS_CSV, INPUTS_KEY, FileDigest

_LOG = logging.getLogger(__name__)
_GLOB_CHARS = frozenset("*?[")


def _stage_of(path: str) -> str:
    for stage in STAGES:
        for rel in STAGE_OUTPUTS[stage]:
            if path.startswith(rel) if rel.endswith("/") else path == rel:
                return stage
    return "a stage"


def check_fingerprints(fs: Any, out: str, manifest: dict[str, Any], threads: int = 0) -> list[str]:
    """Problems: published files edited, deleted, or added inside a published folder since their stage ran."""
    fingerprints: dict[str, str] = manifest.get(FINGERPRINTS_KEY) or {}
    if FINGERPRINTS_KEY not in manifest:
        _LOG.info("audit: %s records no fingerprints (written before they existed); published files not checked", out)
        return []
    present = {rel: fs.join(out, rel) for rel in fingerprints if fs.exists(fs.join(out, rel))}
    digests = provenance.sha256_files(fs.open_read, present.values(), threads)
    problems = []
    for rel, expected in sorted(fingerprints.items()):
        if rel not in present:
            problems.append(f"fingerprints: {rel} was deleted after the {_stage_of(rel)} stage published it")
        elif digests[present[rel]][0] != expected:
            problems.append(
                f"fingerprints: {rel} was edited after the {_stage_of(rel)} stage published it "
                f"(sha256 {digests[present[rel]][0][:16]}..., published {expected[:16]}...)"
            )
    for stage in manifest.get("stages", {}):
        for rel in STAGE_OUTPUTS.get(stage, ()):
            if not rel.endswith("/"):
                continue
            base = fs.join(out, rel.rstrip("/")).rstrip("/") + "/"
            for path in fs.list_tree(fs.join(out, rel.rstrip("/"))):
                name = rel + path[len(base) :] if path.startswith(base) else path
                if name not in fingerprints:
                    problems.append(f"fingerprints: {name} was added to {rel} after the {stage} stage published it")
    return problems


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def current_inputs(fs: Any, input_dir: str, patterns: list[str], threads: int = 0) -> dict[str, FileDigest]:
    """``{path: FileDigest}`` of the regular files the ``patterns`` (globs relative to ``input_dir``, or single
    paths, relative or absolute) name now, keyed as the build records them (``provenance.relative_to``)."""
    paths: list[str] = []
    for pattern in patterns:
        if _is_glob(pattern):
            paths += list_matching(fs, input_dir, pattern)
        else:
            path = provenance.resolve_input(input_dir, pattern, fs.join)
            paths += [path] if fs.exists(path) else []
    paths = sorted({path for path in paths if provenance.is_regular(path)})
    digests = provenance.sha256_files(fs.open_read, paths, threads)
    found = {}
    for path, (sha256, size) in digests.items():
        relative = provenance.relative_to(input_dir, path)
        found[relative] = FileDigest(relative, sha256, size)
    return found


def check_inputs(fs: Any, out: str, manifest: dict[str, Any], threads: int = 0) -> list[str]:
    """Problems: raw inputs whose content changed, that appeared or that vanished since the build (or why the
    input set cannot be checked)."""
    from transforms.config import ConfigError, DatasetConfig, validate
    from transforms.recipes import REGISTRY

    recorded_set = manifest.get(INPUTS_KEY)
    input_dir = manifest.get("stages", {}).get("build", {}).get("input_dir")
    raw_config = manifest.get("config")
    if not recorded_set or not input_dir or not raw_config:
        return [f"inputs: {out} records no input set (manifest key '{INPUTS_KEY}'); rebuild to record one"]
    csv_path = fs.join(out, INPUTS_CSV)
    if not fs.exists(csv_path):
        return [f"inputs: {INPUTS_CSV} is missing; the input set cannot be compared file by file"]
    recorded = provenance.parse_inputs(fs.read_text(csv_path))
    problems = []
    if provenance.input_set(recorded.values()) != recorded_set:
        problems.append(f"inputs: {INPUTS_CSV} does not match the manifest's '{INPUTS_KEY}' digest (edited?)")
    if "://" not in input_dir:
        input_dir = os.path.expanduser(input_dir)
    if not fs.exists(input_dir):
        return [*problems, f"inputs: the build's input folder {input_dir} is not reachable from here"]
    recipe = REGISTRY.get(raw_config.get("recipe", ""))
    patterns = getattr(recipe, "input_patterns", None)
    if patterns is None:
        return [*problems, f"inputs: recipe '{raw_config.get('recipe')}' does not say which files are its inputs"]
    try:
        config = validate(DatasetConfig, raw_config, f"{out} manifest 'config'")
    except ConfigError as error:
        return [*problems, f"inputs: the manifest's config does not validate: {error}"]
    current = current_inputs(fs, input_dir, patterns(config), threads)
    diff = provenance.compare_inputs(recorded, current)
    problems += [
        f"inputs: {path} changed since the build (sha256 {current[path].sha256[:16]}..., "
        f"built from {recorded[path].sha256[:16]}...)"
        for path in diff["changed"]
    ]
    problems += [f"inputs: {path} appeared under {input_dir} since the build" for path in diff["appeared"]]
    problems += [f"inputs: {path} vanished from {input_dir} since the build" for path in diff["vanished"]]
    return problems
