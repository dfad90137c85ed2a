"""``sigforge predict``: score raw G2Net ``.npy`` files with a trained run, through the training preprocessing.

Train/serve parity: a raw file goes through exactly what its training examples went through, with the saved
artifacts, not a re-implementation::

    raw .npy bytes -> transforms.strain.preprocess_npy_batch          validation + the dataset's bandpass
                      (settings from DATA/manifest.json "config".build: sample rate, shape, band, order)
      -> raw tf.Example (uid, target_id, label, float32 strain bytes)  beam_pipelines.records.encode_example
      -> tf.io.parse_example with transforms.recipes.g2net.preprocessing.raw_feature_spec
      -> the SAVED tf.Transform graph DATA/stats/transform_fn           train average PSD, whitening, Tukey,
                                                                       train channel mean/std (all baked in)
      -> RUN/{prefix}.keras                                            score in [0, 1]

``DATA`` is the dataset the run was trained on (``data_dir`` in ``RUN/{prefix}_config.json``) unless
``data_dir`` / ``--data`` names another copy; a manifest that differs from the run's is warned about. The id of
a file is its name without ``.npy`` (the G2Net convention, as in the build stage). At serve time the group and
label are unknown: ``target_id`` is the id and ``label`` is 0, which the graph only passes through (the label
selected the PSD examples during analysis; the result is a constant of the saved graph).

Every input is either scored or reported with its reason (``unreadable_npy``, ``wrong_shape``, ``non_finite``,
``missing``, ``no_npy_files``); a bad file never stops the others. The output CSV has one row per input:
``id,path,score,error`` (score empty where error is set).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import posixpath
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from model.artifacts import RunPaths, read_json, write_text
from model.cli_common import add_log_level, setup_logging
from model.config import G2NetCNNConfig, TrainerConfig, config_from_dict
from model.errors import DatasetError, RunError
from transforms.config import BuildConfig, ConfigError, DatasetConfig

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("id", "path", "score", "error")
MISSING = "missing"
NO_NPY_FILES = "no_npy_files"


@dataclass(frozen=True)
class Prediction:
    """One input: its id (file name without ``.npy``), path, and either a score or an error message."""

    id: str
    path: str
    score: float | None = None
    error: str | None = None


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


def file_id(path: str) -> str:
    """``train/0/0/0/000a5b6e5c.npy`` -> ``000a5b6e5c`` (as ``beam_pipelines.build_g2net.sample_id``)."""
    name = posixpath.basename(path)
    return name[: -len(".npy")] if name.endswith(".npy") else name


def list_inputs(inputs: Sequence[str]) -> list[Prediction]:
    """One row per file to score (no score, no error yet) or per unusable input (error set), in input order.

    A file is taken as is, a folder for every ``*.npy`` below it (sorted); a path that does not exist or a
    folder without ``.npy`` files becomes an error row.
    """
    rows: list[Prediction] = []
    for path in inputs:
        if tf.io.gfile.isdir(path):
            found = sorted(
                posixpath.join(folder, name)
                for folder, _, names in tf.io.gfile.walk(path)
                for name in names
                if name.endswith(".npy")
            )
            if not found:
                rows.append(Prediction(file_id(path.rstrip("/")), path, error=f"{NO_NPY_FILES}: no .npy file below"))
            rows += [Prediction(file_id(f), f) for f in found]
        elif tf.io.gfile.exists(path):
            rows.append(Prediction(file_id(path), path))
        else:
            rows.append(Prediction(file_id(path), path, error=f"{MISSING}: no such file or folder"))
    return rows


def dataset_config(data_dir: str) -> tuple[DatasetConfig, str]:
    """(DatasetConfig recorded in ``DATA/manifest.json``, sha256 of the manifest); raises DatasetError."""
    from model.data import read_manifest
    from transforms.config import validate

    path, sha256, manifest = read_manifest(data_dir)
    if "config" not in manifest:
        raise DatasetError(f"{path} records no dataset config (was the build stage run by sigforge?)")
    config = validate(DatasetConfig, manifest["config"], f"{path} 'config'")
    if config.recipe != "g2net":
        raise DatasetError(f"{data_dir} is a '{config.recipe}' dataset; predict scores raw .npy strain (g2net)")
    return config, sha256


class Predictor:
    """A run's model, its dataset's build settings and saved transform graph, loaded once.

    Args:
      run_dir: run folder written by ``model.train`` (holds one ``*_config.json`` and the ``.keras`` model).
      data_dir: dataset folder whose ``stats/transform_fn`` and manifest config to use (default: the run's
        recorded ``data_dir``).
      batch_size: files per batch (default: the run's ``data.eval_batch_size``).
    Raises:
      RunError, DatasetError, ConfigError naming the missing or inconsistent artifact.
    """

    def __init__(self, run_dir: str, data_dir: str | None = None, batch_size: int | None = None):
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
        if not isinstance(self.trainer.model, G2NetCNNConfig):
            raise RunError(f"run {run_dir} is not a strain model (architecture {self.trainer.model.architecture})")
        self.data_dir = data_dir or saved.get("data_dir")
        if not self.data_dir:
            raise RunError(f"{self.paths.config} records no data_dir; pass --data DATA")
        if not tf.io.gfile.isdir(self.data_dir):
            origin = "--data" if data_dir else f"the run's training data (data_dir in {self.paths.config})"
            raise DatasetError(f"dataset folder {self.data_dir} ({origin}) does not exist; pass --data DATA")
        dataset, sha256 = dataset_config(self.data_dir)
        self.build: BuildConfig = dataset.build
        if sha256 != saved.get("manifest", {}).get("sha256"):
            logger.warning(
                "the manifest of %s differs from the one run %s was trained on: its statistics may differ",
                self.data_dir,
                self.paths.prefix,
            )
        stats = posixpath.join(self.data_dir, "stats")
        if not tf.io.gfile.isdir(posixpath.join(stats, "transform_fn")):
            raise DatasetError(f"{stats}/transform_fn is missing: run the analyze stage on {self.data_dir}")
        # The transform graph is a TF1 SavedModel (analyze runs tf.Transform with force_tf_compat_v1); in eager
        # mode TFTransformOutput applies it through its Keras layer, which loads it once.
        self._transform = tft.TFTransformOutput(stats).transform_features_layer()
        if not tf.io.gfile.exists(self.paths.model):
            raise RunError(f"saved model {self.paths.model} is missing")
        self.model = keras.saving.load_model(self.paths.model, compile=False)
        self.batch_size = batch_size or self.trainer.data.eval_batch
        logger.info(
            "predict: model %s, transform %s, bandpass %s-%s Hz order %d",
            self.paths.model,
            stats,
            self.build.bandpass.low_hz,
            self.build.bandpass.high_hz,
            self.build.bandpass.order,
        )

    def preprocess(self, datas: Sequence[bytes]) -> list[np.ndarray | Exception]:
        """Build-stage preprocessing of raw ``.npy`` bytes: bandpassed ``(n_channels, n_samples)`` float32, or
        the ``RejectedInput`` of a bad file, in place (``transforms.strain.preprocess_npy_batch``)."""
        from transforms.recipes.g2net.strain import preprocess_for_build

        return preprocess_for_build(list(datas), self.build)

    def transform(self, ids: Sequence[str], strains: Sequence[np.ndarray]) -> dict[str, tf.Tensor]:
        """Bandpassed strains -> raw tf.Examples (as the build stage writes them) -> the saved transform graph.

        Returns the transformed features: ``strain`` float32 ``(batch, n_channels, n_samples)``, ``uid``,
        ``target_id``, ``label``.
        """
        from transforms.contract import STRAIN, encode_example
        from transforms.recipes.g2net.preprocessing import raw_feature_spec

        serialized = [encode_example(i, i, 0, {STRAIN: s}) for i, s in zip(ids, strains, strict=True)]
        raw = tf.io.parse_example(tf.constant(serialized), raw_feature_spec())
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
        readable, datas = [], []
        for index, path in enumerate(paths):
            try:
                with tf.io.gfile.GFile(path, "rb") as handle:
                    datas.append(handle.read())
                readable.append(index)
            except (OSError, tf.errors.OpError) as error:
                results[index] = Prediction(file_id(path), path, error=f"unreadable_npy: cannot read file: {error}")
        valid_ids, valid_index, strains = [], [], []
        for index, result in zip(readable, self.preprocess(datas), strict=True):
            if isinstance(result, np.ndarray):
                valid_index.append(index)
                valid_ids.append(file_id(paths[index]))
                strains.append(result)
            else:
                results[index] = Prediction(file_id(paths[index]), paths[index], error=str(result))
        if strains:
            scores = self.score(self.transform(valid_ids, strains))
            for index, uid, value in zip(valid_index, valid_ids, scores, strict=True):
                results[index] = Prediction(uid, paths[index], score=float(value))
        for index in sorted(results):
            if results[index].error is not None:
                logger.error("predict: %s: %s", paths[index], results[index].error)
        return [results[i] for i in range(len(paths))]


def predict(
    run_dir: str, inputs: Sequence[str], data_dir: str | None = None, batch_size: int | None = None
) -> PredictResult:
    """Scores raw ``.npy`` files (paths or folders searched recursively) with the run in ``run_dir``.

    Returns a :class:`PredictResult`: ``.scores`` lists ``(id, score)`` of the scored files, ``.errors``
    ``(path, "reason: detail")`` of the others, ``.rows`` both in input order. Raises RunError, DatasetError or
    ConfigError when the run or dataset is unusable.
    """
    predictor = Predictor(run_dir, data_dir, batch_size)
    entries = list_inputs(inputs)
    for row in entries:
        if row.error is not None:
            logger.error("predict: %s: %s", row.path, row.error)
    scored = iter(predictor.predict_files([row.path for row in entries if row.error is None]))
    result = PredictResult([row if row.error is not None else next(scored) for row in entries])
    logger.info("predict: %d scored, %d not scored", len(result.scores), len(result.errors))
    return result


def format_csv(rows: Sequence[Prediction]) -> str:
    """``id,path,score,error`` per row; scores with 9 significant digits, empty where not scored."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        score = "" if row.score is None else f"{row.score:.9g}"
        writer.writerow([row.id, row.path, score, row.error or ""])
    return buffer.getvalue()


def run_predict(
    run_dir: str,
    inputs: Sequence[str],
    out: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
) -> int:
    """CLI body: predict, write the CSV to ``out`` (or stdout); 0 all scored, 1 some inputs not, 2 unusable
    run or dataset (logged, no traceback)."""
    if logging.getLogger().level > logging.DEBUG:  # TF's saved-model loaders log routine INFO lines
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = predict(run_dir, inputs, data_dir, batch_size)
    except (ConfigError, DatasetError, RunError) as error:
        logger.error("%s", error)
        return 2
    text = format_csv(result.rows)
    if out is None:
        sys.stdout.write(text)
    else:
        write_text(out, text)
        logger.info("predict: scores written to %s", out)
    return 1 if result.errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.predict",
        description="Score raw G2Net .npy files with a trained run through the training preprocessing: the "
        "dataset's bandpass, its saved tf.Transform graph (train PSD and statistics) and the saved model. Exit "
        "code 0: all scored; 1: some inputs could not be scored (error column); 2: unusable run or dataset.",
    )
    parser.add_argument("--run", required=True, help="run folder written by `sigforge train` / model.train")
    parser.add_argument(
        "--input",
        dest="inputs",
        required=True,
        nargs="+",
        metavar="NPY_OR_DIR",
        help="raw .npy files (3, 4096) and/or folders searched recursively for *.npy (local or gs://)",
    )
    parser.add_argument("--out", default=None, help="output CSV id,path,score,error (default: stdout)")
    parser.add_argument(
        "--data",
        default=None,
        help="dataset folder whose stats/transform_fn and build settings to use (default: the run's data_dir)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="files per batch (default: eval batch size)")
    add_log_level(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_predict(args.run, args.inputs, args.out, args.data, args.batch_size)


if __name__ == "__main__":
    sys.exit(main())
