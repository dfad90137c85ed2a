"""The predictor: a trained run's model with its dataset's transform graph, scoring raw input files the way the
build reads them (``model/predict.py`` is its command line and the CV ensemble)."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from model.artifacts import RunPaths, read_json
from model.config import TrainerConfig, config_from_dict
from model.data import read_manifest
from model.errors import DatasetError, RunError
from model.feature_spec import resolve_input_spec
from model.guards import check_unlocked, verify_artifacts
from transforms.config import ConfigError, DatasetConfig, validate
from transforms.recipes import get_recipe
from transforms.recipes.base import Serving

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("id", "path", "score", "error")
MISSING = "missing"
NO_NPY_FILES = "no_npy_files"


@dataclass(frozen=True)
class Prediction:
    """One input: its id (the serving step's ``example_id``), path, and either a score or an error message."""

    id: str
    path: str
    score: float | None = None
    error: str | None = None
    # A CV run's prediction: iteration -> that iteration model's score (``score`` is their mean).
    iterations: dict[int, float] | None = field(default=None, hash=False)


@dataclass
class PredictResult:
    """Every input's :class:`Prediction`, in input order; ``scores`` and ``errors`` are views of it."""

    rows: list[Prediction] = field(default_factory=list)

    @property
    def scores(self) -> list[tuple[str, float]]:
        """``(id, score)`` of every scored file."""
        return [(r.id, r.score) for r in self.rows if r.error is None]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """``(path, "reason: detail")`` of every input that could not be scored."""
        return [(r.path, r.error) for r in self.rows if r.error is not None]


def list_inputs(inputs: Sequence[str], serving: Serving) -> list[Prediction]:
    """One row per file to score (no score, no error yet) or per unusable input (error set), in input order.

    A file is taken as is, a folder for every file below it ending in ``serving.input_suffix`` (sorted); a path
    that does not exist or a folder without such files becomes an error row.
    """
    suffix, example_id = serving.input_suffix, serving.example_id
    rows: list[Prediction] = []
    for path in inputs:
        if tf.io.gfile.isdir(path):
            found = sorted(
                posixpath.join(folder, name)
                for folder, _, names in tf.io.gfile.walk(path)
                for name in names
                if name.endswith(suffix)
            )
            if not found:
                rows.append(Prediction(example_id(path), path, error=f"{NO_NPY_FILES}: no {suffix} file below"))
            rows += [Prediction(example_id(f), f) for f in found]
        elif tf.io.gfile.exists(path):
            rows.append(Prediction(example_id(path), path))
        else:
            rows.append(Prediction(example_id(path), path, error=f"{MISSING}: no such file or folder"))
    return rows


def dataset_config(data_dir: str) -> tuple[DatasetConfig, str]:
    """(DatasetConfig recorded in ``DATA/manifest.json``, sha256 of the manifest); raises DatasetError."""
    path, sha256, manifest = read_manifest(data_dir)
    if "config" not in manifest:
        raise DatasetError(f"{path} records no dataset config (was the build stage run by sigforge?)")
    return validate(DatasetConfig, manifest["config"], f"{path} 'config'"), sha256


def serving_step(config: DatasetConfig, data_dir: str) -> Serving:
    """The predict step of the dataset's recipe; DatasetError naming the recipe when it has none."""
    serving = get_recipe(config.recipe).serving
    if serving is None:
        raise DatasetError(f"recipe '{config.recipe}' has no predict step (dataset {data_dir})")
    return serving


class Predictor:
    """A run's model, its dataset's recipe, build settings and saved transform graph, loaded once.

    Args:
      run_dir: run folder written by ``model.train`` (holds one ``*_config.json`` and the ``.keras`` model).
      data_dir: dataset folder whose ``stats/transform_fn`` and manifest config to use (default: the run's
        recorded ``data_dir``).
      batch_size: files per batch (default: the run's ``data.eval_batch_size``).
      trust_artifacts: load the transform graph and model even when they (or the dataset's manifest and
        statistics) differ from the digests recorded at training (a WARNING; default: refuse).
      ignore_lock: read the dataset even while a live sigforge run holds its lock (a WARNING; default: refuse).
    Raises:
      RunError, DatasetError, ConfigError naming the missing or inconsistent artifact; ArtifactMismatch (code
      ``artifact_mismatch``); DatasetBusy (code ``locked``).
    """

    def __init__(
        self,
        run_dir: str,
        data_dir: str | None = None,
        batch_size: int | None = None,
        trust_artifacts: bool = False,
        ignore_lock: bool = False,
    ):
        import keras
        import tensorflow_transform as tft

        import model.layers  # noqa: F401  (registers the custom layers for deserialization)

        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        self.paths = RunPaths.find(run_dir)
        saved = read_json(self.paths.config)
        if "config" not in saved:
            raise RunError(f"{self.paths.config} has no 'config' entry")
        self.trainer: TrainerConfig = config_from_dict(saved["config"], self.paths.config)
        self.data_dir = data_dir or saved.get("data_dir")
        if not self.data_dir:
            raise RunError(f"{self.paths.config} records no data_dir; pass --data DATA")
        if not tf.io.gfile.isdir(self.data_dir):
            origin = "--data" if data_dir else f"the run's training data (data_dir in {self.paths.config})"
            raise DatasetError(f"dataset folder {self.data_dir} ({origin}) does not exist; pass --data DATA")
        check_unlocked(self.data_dir, "predict", ignore_lock)
        self.dataset, sha256 = dataset_config(self.data_dir)
        self.recipe = get_recipe(self.dataset.recipe)
        self.serving = serving_step(self.dataset, self.data_dir)
        if sha256 != saved.get("manifest", {}).get("sha256"):
            logger.warning(
                "the manifest of %s differs from the one run %s was trained on: its statistics may differ",
                self.data_dir,
                self.paths.prefix,
            )
        stats = posixpath.join(self.data_dir, self.trainer.data.stats_subdir)
        if not tf.io.gfile.isdir(posixpath.join(stats, tft.TFTransformOutput.TRANSFORM_FN_DIR)):
            raise DatasetError(f"{stats}/transform_fn is missing: run the analyze stage on {self.data_dir}")
        verify_artifacts(self.paths.run_dir, self.data_dir, "predict", trust_artifacts)  # before any graph loads
        output = tft.TFTransformOutput(stats)
        # The run's network must take what this dataset's graph produces (the architecture's input check).
        resolve_input_spec(output.transformed_feature_spec(), self.trainer, f"the transformed feature spec of {stats}")
        self._raw_spec = self.recipe.raw_feature_spec(self.dataset)
        # The transform graph is a TF1 SavedModel (analyze runs tf.Transform with force_tf_compat_v1); in eager
        # mode TFTransformOutput applies it through its Keras layer, which loads it once.
        self._transform = output.transform_features_layer()
        if not tf.io.gfile.exists(self.paths.model):
            raise RunError(f"saved model {self.paths.model} is missing")
        self.model = keras.saving.load_model(self.paths.model, compile=False)
        self.batch_size = batch_size or self.trainer.data.eval_batch
        logger.info(
            "predict: model %s, transform %s, recipe %s: %s",
            self.paths.model,
            stats,
            self.recipe.name,
            self.serving.describe(self.dataset),
        )

    def serve(self, items: Sequence[tuple[str, bytes]]) -> list[bytes | Exception]:
        """(id, raw file bytes) -> the raw serialized tf.Example the build stage would write, or the exception
        (``RejectedInput``) saying why that file is unusable, in place (the recipe's serving step)."""
        return self.serving.serve_examples(self.dataset, list(items))

    def transform(self, serialized: Sequence[bytes]) -> dict[str, tf.Tensor]:
        """Raw serialized tf.Examples -> the saved transform graph: the transformed features (the model's inputs,
        ``uid``, ``target_id``, ``label``), batched."""
        raw = tf.io.parse_example(tf.constant(list(serialized)), self._raw_spec)
        return dict(self._transform(raw))

    def score(self, features: dict[str, tf.Tensor]) -> np.ndarray:
        """Model scores ``(batch,)`` float64 of transformed features (the model's inputs, cast to float32)."""
        inputs = {name: tf.cast(features[name], tf.float32) for name in self.trainer.model.input_features}
        return np.asarray(self.model.predict_on_batch(inputs), dtype=np.float64).reshape(-1)

    def predict_files(self, paths: Sequence[str]) -> list[Prediction]:
        """One Prediction per path, in order: scored, or with the reason it could not be read or used."""
        rows: list[Prediction] = []
        for start in range(0, len(paths), self.batch_size):
            rows += self._predict_batch(paths[start : start + self.batch_size])
        return rows

    def _predict_batch(self, paths: Sequence[str]) -> list[Prediction]:
        results: dict[int, Prediction] = {}
        ids = [self.serving.example_id(path) for path in paths]
        readable, items = [], []
        for index, path in enumerate(paths):
            try:
                with tf.io.gfile.GFile(path, "rb") as handle:
                    items.append((ids[index], handle.read()))
                readable.append(index)
            except (OSError, tf.errors.OpError) as error:
                results[index] = Prediction(ids[index], path, error=f"unreadable_npy: cannot read file: {error}")
        valid_index, examples = [], []
        for index, result in zip(readable, self.serve(items), strict=True):
            if isinstance(result, Exception):
                results[index] = Prediction(ids[index], paths[index], error=str(result))
            else:
                valid_index.append(index)
                examples.append(result)
        if examples:
            scores = self.score(self.transform(examples))
            for index, value in zip(valid_index, scores, strict=True):
                results[index] = Prediction(ids[index], paths[index], score=float(value))
        for index in sorted(results):
            if results[index].error is not None:
                logger.error("predict: %s: %s", paths[index], results[index].error)
        return [results[i] for i in range(len(paths))]
