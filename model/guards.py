"""What the trainer, ``predict`` and ``evaluate`` check before they trust a dataset folder or a run folder.

* **The lock.** A dataset folder that a live ``sigforge`` run holds (``OUT/.sigforge.lock``) is being written:
  readers refuse it (code ``locked``) unless ``--ignore-lock`` (a WARNING). See ``transforms/lockfile.py``.
* **Artifact digests.** A SavedModel is code: the tf.Transform graph under ``DATA/stats/transform_fn/`` and the
  run's ``.keras`` model run when they are loaded. Training records the sha256 of every file the run depends on
  in ``RUN/digests.json``: ``DATA/manifest.json``, every file under ``DATA/stats/`` (the transform graph with
  its ``saved_model.pb``, ``variables/`` and assets, the transformed metadata, the statistics) and the run's
  model and weights. ``predict`` and ``evaluate`` recompute them and refuse any change, addition or removal
  (code ``artifact_mismatch``, naming the files) unless ``--trust-artifacts`` (a WARNING). This catches an
  artifact changed after training, by accident or on purpose; it does not vet a dataset that was already
  malicious when the run trained on it, nor an attacker who can also rewrite ``digests.json`` (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import time

import tensorflow as tf

from transforms import lockfile
from transforms.contract import MANIFEST, STATS_DIR
from transforms.errors import SigforgeError

logger = logging.getLogger(__name__)

DIGESTS = "digests.json"
_SHOWN = 5


class ArtifactMismatch(SigforgeError):
    """A run's or its dataset's artifact differs from the one recorded at training time."""

    code = "artifact_mismatch"


# ---- the lock -----------------------------------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            return handle.read()
    except tf.errors.NotFoundError:
        return None


def _age(path: str) -> float | None:
    local = path.removeprefix("file://")
    if "://" in local:
        return None
    try:
        return time.time() - os.stat(local).st_mtime
    except OSError:
        return None


def check_unlocked(data_dir: str, what: str, ignore: bool = False) -> None:
    """DatasetBusy (code ``locked``) when a live run holds ``data_dir``'s lock; a WARNING with ``ignore``."""
    lockfile.check_unlocked(data_dir, _read, _age, what, ignore, logger)


# ---- digests ------------------------------------------------------------------------------------------------------


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_artifacts(data_dir: str) -> list[str]:
    """The dataset files a run depends on, relative to ``data_dir``: the manifest and every file under stats/."""
    stats = posixpath.join(data_dir, STATS_DIR)
    found = [MANIFEST] if tf.io.gfile.exists(posixpath.join(data_dir, MANIFEST)) else []
    if tf.io.gfile.isdir(stats):
        for folder, _, names in tf.io.gfile.walk(stats):
            found += [posixpath.relpath(posixpath.join(folder, name), data_dir) for name in names]
    return sorted(found)


def _digests(base: str, relative: list[str]) -> dict[str, str]:
    return {rel: sha256_of(posixpath.join(base, rel)) for rel in relative}


def digest_dataset(data_dir: str) -> dict[str, str]:
    """``{relative path: sha256}`` of every dataset artifact (``dataset_artifacts``)."""
    return _digests(data_dir, dataset_artifacts(data_dir))


def record_digests(run_dir: str, run_files: list[str], data_dir: str, dataset: dict[str, str] | None = None) -> str:
    """Writes ``run_dir/digests.json``: the sha256 of ``run_files`` (names in ``run_dir``) and of every dataset
    artifact (``dataset``, as ``digest_dataset`` gave it when training started; computed now when None)."""
    path = posixpath.join(run_dir, DIGESTS)
    payload = {
        "algorithm": "sha256",
        "data_dir": data_dir,
        "run": _digests(run_dir, run_files),
        "dataset": dataset if dataset is not None else digest_dataset(data_dir),
    }
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def _differences(recorded: dict[str, str], base: str, current: list[str]) -> list[str]:
    problems = []
    for rel in sorted(set(recorded) | set(current)):
        if rel not in current:
            problems.append(f"{posixpath.join(base, rel)} is missing")
        elif rel not in recorded:
            problems.append(f"{posixpath.join(base, rel)} was added")
        elif sha256_of(posixpath.join(base, rel)) != recorded[rel]:
            problems.append(f"{posixpath.join(base, rel)} changed")
    return problems


def verify_artifacts(run_dir: str, data_dir: str, what: str, trust: bool = False) -> None:
    """Recomputes the digests ``record_digests`` wrote and raises ArtifactMismatch naming every file that
    changed, was added (under stats/) or is missing; with ``trust`` logs a WARNING and returns."""
    path = posixpath.join(run_dir, DIGESTS)
    recorded = json.loads(_read(path) or b"null")
    if not isinstance(recorded, dict):
        problems = [f"{path} is missing: the run records no digests of its artifacts (trained before they were)"]
    else:
        run = recorded.get("run", {})
        problems = _differences(run, run_dir, [rel for rel in run if tf.io.gfile.exists(posixpath.join(run_dir, rel))])
        problems += _differences(recorded.get("dataset", {}), data_dir, dataset_artifacts(data_dir))
    if not problems:
        logger.debug("%s: every artifact matches %s", what, path)
        return
    shown = "; ".join(problems[:_SHOWN]) + (f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else "")
    if trust:
        logger.warning("--trust-artifacts: %s uses artifacts that differ from training: %s", what, shown)
        return
    raise ArtifactMismatch(
        f"{what}: artifacts differ from the ones run {run_dir} was trained with: {shown}. A saved model is code "
        "that runs when loaded; retrain, or pass --trust-artifacts if you know why they changed"
    )
