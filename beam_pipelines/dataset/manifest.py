"""The dataset manifest (``OUT/manifest.json``) and the per-stage publish protocol.

A stage writes everything into ``OUT/.tmp_<stage>/``; only when the pipeline has finished are its folders
moved into place and its entry added to the manifest. A killed run therefore leaves at most a ``.tmp_`` folder,
never an output that looks complete. Without ``--overwrite`` a stage refuses to replace an existing output.
Each file a stage publishes is fingerprinted (sha256) in the ``.tmp_`` folder just before the rename; the
manifest's ``fingerprints`` maps its path relative to ``OUT`` to that digest (``sigforge audit`` re-checks them).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beam_pipelines.dataset import fs, ownership
from beam_pipelines.dataset.errors import StageError
from transforms import provenance
from transforms.contract import MANIFEST, REPORT_DIR, STAGE_OUTPUTS, STAGES
from transforms.provenance import FINGERPRINTS_KEY, INPUTS_KEY

_LOG = logging.getLogger(__name__)

_VERSIONED = ("sigforge", "apache-beam", "tensorflow", "tensorflow-transform", "tfx-bsl", "numpy", "scipy")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_manifest(out: str) -> dict[str, Any]:
    path = fs.join(out, MANIFEST)
    if not fs.exists(path):
        return {"stages": {}}
    return json.loads(fs.read_text(path))


def write_manifest(out: str, manifest: dict[str, Any]) -> None:
    fs.write_text(fs.join(out, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class StageRun:
    """One stage's run on ``out``: its temporary folder and the publish step."""

    out: str
    stage: str
    owner_check: Callable[[], None] | None = None
    tmp: str = field(init=False)

    def check_owner(self) -> None:
        """Raises (the lock's DatasetLocked) unless this run still owns ``out``: called before deleting and
        before publishing, so a run that lost the folder changes nothing."""
        if self.owner_check is not None:
            self.owner_check()

    def __post_init__(self) -> None:
        self.tmp = fs.join(self.out, f".tmp_{self.stage}")

    def tmp_path(self, relative: str) -> str:
        return fs.join(self.tmp, relative.rstrip("/"))

    def final_path(self, relative: str) -> str:
        return fs.join(self.out, relative.rstrip("/"))


def begin_stage(
    out: str,
    stage: str,
    overwrite: bool,
    requires: str | None = None,
    owner_check: Callable[[], None] | None = None,
    input_dir: str | None = None,
) -> StageRun:
    """Checks that ``stage`` may run on ``out`` and returns a clean temporary folder for it.

    Raises StageError before any work when ``out`` is not sigforge's or overlaps the raw input (``input_dir``,
    default: the build's recorded one; ``ownership.py``), when the required previous stage is missing, or when
    this stage's output exists and ``overwrite`` is false. With ``overwrite`` the stage's and all later stages'
    outputs and manifest entries are removed, since they would be stale: only the paths the manifest says
    sigforge published, never another file. ``owner_check`` (the stage runner passes the folder lock's
    ``verify``) runs before anything is deleted and before the stage publishes. Every stage's stale ``.tmp_``
    folder (left by a killed run) is removed.
    """
    run = StageRun(out, stage, owner_check)
    ownership.check_no_overlap(out, input_dir)
    ownership.check_folder(out)
    manifest = read_manifest(out)
    input_dir = input_dir or ownership.recorded_input(manifest)
    ownership.check_no_overlap(out, input_dir)
    if requires is not None and requires not in manifest.get("stages", {}):
        raise StageError(
            f"stage '{stage}' needs the '{requires}' stage's output in {out}, but the manifest has no "
            f"'{requires}' entry; run `sigforge {requires}` first",
            code="missing_stage",
        )
    later = STAGES[STAGES.index(stage) :]
    ownership.check_ours(out, manifest, STAGE_OUTPUTS[stage], f"the '{stage}' stage")
    existing = [rel for s in later[:1] for rel in STAGE_OUTPUTS[s] if fs.exists(fs.join(out, rel.rstrip("/")))]
    if (existing or stage in manifest.get("stages", {})) and not overwrite:
        shown = ", ".join(existing) or f"manifest entry '{stage}'"
        raise StageError(
            f"{out} already has the '{stage}' output ({shown}); pass --overwrite to replace it", code="output_exists"
        )
    if overwrite:
        replaced = [rel for name in later for rel in STAGE_OUTPUTS[name]] + [REPORT_DIR + "/"]
        ownership.check_ours(out, manifest, replaced, f"--overwrite of '{stage}'")
        run.check_owner()  # still ours: nothing is deleted by a run that lost the folder's lock
        doomed = [fs.join(out, rel.rstrip("/")) for rel in replaced]  # report/: stale once a stage is replaced
        doomed = [path for path in doomed if fs.exists(path)]
        for path in doomed:
            ownership.check_deletable(out, path, input_dir)
        _check_can_replace(out, doomed)
        for name in later:  # the manifest stops claiming these stages before any of their files go
            manifest.get("stages", {}).pop(name, None)
        drop_provenance(manifest, later)
        if manifest.get(ownership.PUBLISHING, {}).get("stage") in later:
            manifest.pop(ownership.PUBLISHING)
        if fs.exists(fs.join(out, MANIFEST)):
            write_manifest(out, manifest)
        for path in doomed:
            fs.delete_tree(path)
    ownership.mark(out)
    for name in STAGES:  # this run holds the lock: every .tmp_<stage> is a killed run's leftover
        fs.delete_tree(fs.join(out, f".tmp_{name}"))
    fs.makedirs(run.tmp)
    return run


def _check_can_replace(out: str, paths: list[str]) -> None:
    """``--overwrite`` deletes only after a write probe into ``out`` and every folder it will replace succeeded."""
    for path in [out, *paths]:
        folder = path if not path.endswith(".csv") else path.rsplit("/", 1)[0]
        try:
            fs.check_writable(folder)
        except OSError as error:
            raise StageError(
                f"--overwrite: cannot write in {folder} ({error}); nothing was deleted. Fix the permissions and rerun",
                code="not_writable",
            ) from None


def config_sha256(config: dict[str, Any]) -> str:
    """The sha256 of a resolved config (its JSON with sorted keys): equal hashes, equal configs."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): value}


def config_changes(base: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``{dotted key: value in config}`` for every key whose value differs from ``base`` (a key only in ``base``
    maps to None)."""
    old, new = _flatten(base), _flatten(config)
    return {key: new.get(key) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def stage_config_entry(out: str, stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """What a stage records of the config it ran with: its hash, and (after build) the keys in which it differs
    from the manifest's ``config`` (the build's). Raises StageError when it names another recipe than the build
    (a stage of one recipe cannot read another recipe's examples)."""
    entry: dict[str, Any] = {"config_sha256": config_sha256(config)}
    built = read_manifest(out).get("config")
    if stage == STAGES[0] or not built:
        return entry
    if built.get("recipe") != config.get("recipe"):
        raise StageError(
            f"config key 'recipe': '{config.get('recipe')}' but {out} was built with recipe '{built.get('recipe')}'; "
            "use the build's config (or rebuild with --overwrite)"
        )
    entry["config_changes"] = config_changes(built, config)
    return entry


def _owned_by(path: str, outputs: tuple[str, ...]) -> bool:
    return any(path.startswith(rel) if rel.endswith("/") else path == rel for rel in outputs)


def drop_provenance(manifest: dict[str, Any], stages: Any) -> None:
    """Removes from ``manifest`` the fingerprints of ``stages``' outputs (and the build's input set), which a
    rerun of those stages replaces."""
    outputs = tuple(rel for name in stages for rel in STAGE_OUTPUTS[name])
    if FINGERPRINTS_KEY in manifest:
        manifest[FINGERPRINTS_KEY] = {k: v for k, v in manifest[FINGERPRINTS_KEY].items() if not _owned_by(k, outputs)}
    if STAGES[0] in stages:
        manifest.pop(INPUTS_KEY, None)


def fingerprint_outputs(run: StageRun) -> dict[str, str]:
    """``{path relative to OUT: sha256}`` of every file the stage is about to publish, read in its temporary
    folder (transforms/provenance.py)."""
    files: dict[str, str] = {}
    for rel in STAGE_OUTPUTS[run.stage]:
        src = run.tmp_path(rel)
        if rel.endswith("/"):
            prefix = src.rstrip("/") + "/"
            files.update({rel + path[len(prefix) :]: path for path in fs.list_tree(src)})
        elif fs.exists(src):
            files[rel] = src
    digests = provenance.sha256_files(fs.open_read, files.values())
    return {rel: digests[path][0] for rel, path in sorted(files.items())}


def finish_stage(
    run: StageRun,
    summary: dict[str, Any],
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Publishes the stage's outputs from its temporary folder and records ``summary`` in the manifest (after
    checking that this run still owns the folder, ``StageRun.check_owner``), with the fingerprint of every
    published file (``fingerprints``) and ``extra`` top-level keys (the build's ``inputs``). The paths it
    publishes are recorded first (``publishing``), then in the stage's entry (``published``): ``--overwrite``
    deletes only those (``ownership.py``)."""
    run.check_owner()
    started = time.monotonic()
    fingerprints = fingerprint_outputs(run)
    seconds = time.monotonic() - started
    _LOG.debug("stage %s: %d published files fingerprinted in %.2f s", run.stage, len(fingerprints), seconds)
    published = [rel for rel in STAGE_OUTPUTS[run.stage] if fs.exists(run.tmp_path(rel))]
    manifest = read_manifest(run.out)
    manifest[ownership.OWNERSHIP] = 1
    manifest[ownership.PUBLISHING] = {"stage": run.stage, "paths": published}
    write_manifest(run.out, manifest)
    for rel in published:
        src = run.tmp_path(rel)
        if rel.endswith("/"):
            fs.publish(src, run.final_path(rel))
        else:
            fs.makedirs(fs.join(run.out, rel.rsplit("/", 1)[0]) if "/" in rel else run.out)
            fs.delete_tree(run.final_path(rel))
            fs.rename_file(src, run.final_path(rel))
    fs.delete_tree(run.tmp)
    manifest = read_manifest(run.out)
    if config is not None:
        manifest["config"] = config
    manifest["versions"] = package_versions()
    manifest.setdefault("created", _now())
    manifest.pop(ownership.PUBLISHING, None)
    manifest.setdefault("stages", {})[run.stage] = {**summary, "published": published, "completed_at": _now()}
    drop_provenance(manifest, [run.stage])
    manifest[FINGERPRINTS_KEY] = {**manifest.get(FINGERPRINTS_KEY, {}), **fingerprints}
    manifest.update(extra or {})
    write_manifest(run.out, manifest)
    _LOG.debug("stage %s published to %s: %s", run.stage, run.out, _short(summary))
    return manifest


def _short(summary: dict[str, Any]) -> str:
    keys = ("seen", "written", "rejected")
    return ", ".join(f"{k}={summary[k]}" for k in keys if k in summary) or json.dumps(summary)[:200]
