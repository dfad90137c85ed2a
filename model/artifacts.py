"""Run folder layout and artifact IO, all through tf.io.gfile so ``gs://`` output folders work.

``RUNS/{name}_{YYYYMMDD_HHMM}[_N]/`` (UTC timestamp; ``_2``, ``_3``... when the folder exists) holds, with
``prefix`` = the folder name::

    {prefix}.keras             the trained model (best weights), reloadable without custom_objects
    {prefix}_weights.npz       every weight as a numpy array, keys "{index:03d}_{variable path}"
    {prefix}_config.json       resolved config, data path, dataset manifest sha256, input spec, versions
    {prefix}_metrics.json      threshold (chosen on val), metrics per split, SNR efficiency, training summary
    history.csv                one row per epoch (loss, metrics, learning rate)
    digests.json               sha256 of the model, the weights and every dataset artifact (model/guards.py)
    scores_{split}.csv         uid,label,score per example
    tensorboard/               TensorBoard event files
    plots/{prefix}_*.png       dashboard, learning curves, ROC, PR, confusion matrix, score histogram(, SNR)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from model.errors import RunError
from transforms.csv_cells import safe_cell
from transforms.evaluation.metrics import jsonable


@dataclass(frozen=True)
class RunPaths:
    """Paths of every artifact of one run folder."""

    run_dir: str
    prefix: str

    def _file(self, suffix: str) -> str:
        return posixpath.join(self.run_dir, f"{self.prefix}{suffix}")

    @property
    def model(self) -> str:
        return self._file(".keras")

    @property
    def weights(self) -> str:
        return self._file("_weights.npz")

    @property
    def config(self) -> str:
        return self._file("_config.json")

    @property
    def metrics(self) -> str:
        return self._file("_metrics.json")

    @property
    def history(self) -> str:
        return posixpath.join(self.run_dir, "history.csv")

    @property
    def tensorboard(self) -> str:
        return posixpath.join(self.run_dir, "tensorboard")

    @property
    def plots(self) -> str:
        return posixpath.join(self.run_dir, "plots")

    def scores(self, split: str) -> str:
        return posixpath.join(self.run_dir, f"scores_{split}.csv")

    @classmethod
    def find(cls, run_dir: str) -> RunPaths:
        """The run in ``run_dir``, identified by its single ``*_config.json``."""
        run_dir = run_dir.rstrip("/")
        configs = tf.io.gfile.glob(posixpath.join(run_dir, "*_config.json"))
        if len(configs) != 1:
            raise RunError(f"run folder {run_dir} must hold exactly one *_config.json, found {len(configs)}")
        prefix = posixpath.basename(configs[0])[: -len("_config.json")]
        return cls(run_dir, prefix)


def make_run_dir(out_dir: str, name: str, now: dt.datetime | None = None) -> RunPaths:
    """Creates ``out_dir/{name}_{YYYYMMDD_HHMM}`` (UTC), adding ``_2``, ``_3``... if it already exists."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d_%H%M")
    base = f"{name}_{stamp}"
    prefix, n = base, 2
    while tf.io.gfile.exists(posixpath.join(out_dir, prefix)):
        prefix, n = f"{base}_{n}", n + 1
    run_dir = posixpath.join(out_dir, prefix)
    tf.io.gfile.makedirs(run_dir)
    return RunPaths(run_dir, prefix)


def make_named_run_dir(out_dir: str, folder: str, prefix: str) -> RunPaths:
    """Creates ``out_dir/folder`` (RunError when it exists) for a run whose files are named ``{prefix}*``: an
    iteration ``iter_XX`` of a cross-validation run (``model/cv.py``)."""
    run_dir = posixpath.join(out_dir, folder)
    if tf.io.gfile.exists(run_dir):
        raise RunError(f"run folder {run_dir} already exists")
    tf.io.gfile.makedirs(run_dir)
    return RunPaths(run_dir, prefix)


def write_text(path: str, text: str) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text)


def write_json(path: str, payload: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(jsonable(payload), indent=2, sort_keys=False) + "\n")


def read_json(path: str) -> dict[str, Any]:
    if not tf.io.gfile.exists(path):
        raise RunError(f"{path} is missing")
    with tf.io.gfile.GFile(path, "r") as handle:
        try:
            return json.loads(handle.read())
        except ValueError as error:
            raise RunError(f"{path} is not valid JSON: {error}") from None


def save_weights_npz(weights: Iterable[Any], path: str) -> int:
    """Saves Keras variables as ``{index:03d}_{path with / -> .}`` numpy arrays; returns how many."""
    arrays = {}
    for i, variable in enumerate(weights):
        key = f"{i:03d}_{getattr(variable, 'path', variable.name).replace('/', '.')}"
        arrays[key] = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return len(arrays)


def write_scores_csv(path: str, uids: Sequence[str], labels: Sequence[int], scores: Sequence[float]) -> None:
    """``uid,label,score`` per example (scores with 9 significant digits); for people, so spreadsheet-safe
    (``transforms.csv_cells``; ``evaluate.read_baseline_scores`` reads it back)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["uid", "label", "score"])
    for uid, label, score in zip(uids, labels, scores, strict=True):
        writer.writerow([safe_cell(uid), int(label), safe_cell(f"{float(score):.9g}")])
    write_text(path, buffer.getvalue())


def write_history_csv(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """One row per epoch: ``epoch`` (0-based, as Keras' CSVLogger) then the logged values."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_history_csv(path: str) -> dict[str, list[float]]:
    """history.csv back as ``{key: [value per epoch]}`` (the ``epoch`` column dropped); {} when absent."""
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path, "r") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows] for k in keys}
