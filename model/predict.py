"""``sigforge predict``: score raw input files with a trained run, through the training preprocessing.

Train/serve parity: a raw file goes through exactly what its training examples went through, with the saved
artifacts, not a re-implementation::

    raw file bytes -> the dataset recipe's serving step               validation + the build stage's preprocessing
                      (Recipe.serving, e.g. G2NetServing)              (settings from DATA/manifest.json "config",
                                                                       e.g. the g2net bandpass)
      -> raw serialized tf.Examples, as the build stage writes them
      -> tf.io.parse_example with the recipe's raw_feature_spec
      -> the SAVED tf.Transform graph DATA/stats/transform_fn           the train statistics, all baked in
                                                                       (a CV iteration's: stats/cv_XX)
      -> RUN/{prefix}.keras                                            score in [0, 1]

``DATA`` is the dataset the run was trained on (``data_dir`` in ``RUN/{prefix}_config.json``) unless
``data_dir`` / ``--data`` names another copy; a manifest that differs from the run's is warned about. The id of
a file is the serving step's ``example_id`` (as in the build stage: for G2Net the file name without ``.npy``); a
folder is searched for files ending in its ``input_suffix``. A recipe without a serving step has no predict.

Every input is either scored or reported with its reason (``unreadable_npy``, ``missing``, ``no_npy_files``, or
the recipe's rejection, e.g. ``wrong_shape``, ``non_finite``); a bad file never stops the others. The output CSV
has one row per input: ``id,path,score,error`` (score empty where error is set).

A cross-validation run (``train --cv``, a folder with ``cv_run.json``) predicts as an ensemble: each iteration's
model scores every input through its own iteration's saved transform graph (``stats/cv_XX``: each model sees
inputs normalized with the statistics it was trained with), and the score is the mean of the iteration models'
scores; ``--per-iteration`` adds a ``score_iter_XX`` column per iteration.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from model.artifacts import write_text
from model.cli_common import add_log_level, fault, setup_logging
from model.cv import CVMember, read_cv_run
from model.predictor import (  # noqa: F401  (re-exported: callers and tests use model.predict's names)
    CSV_COLUMNS,
    MISSING,
    NO_NPY_FILES,
    Prediction,
    Predictor,
    PredictResult,
    dataset_config,
    list_inputs,
    serving_step,
)
from transforms.csv_cells import safe_cell
from transforms.errors import raise_on_signals

logger = logging.getLogger(__name__)


def predict(
    run_dir: str,
    inputs: Sequence[str],
    data_dir: str | None = None,
    batch_size: int | None = None,
    trust_artifacts: bool = False,
    ignore_lock: bool = False,
) -> PredictResult:
    """Scores raw input files (paths, or folders searched recursively) with the run in ``run_dir``.

    Returns a :class:`PredictResult`: ``.scores`` lists ``(id, score)`` of the scored files, ``.errors``
    ``(path, "reason: detail")`` of the others, ``.rows`` both in input order. Raises RunError, DatasetError or
    ConfigError when the run or dataset is unusable. A CV run predicts as the mean of its iterations' models
    (:func:`predict_cv`).
    """
    members = read_cv_run(run_dir)
    if members is not None:
        return predict_cv(members, inputs, data_dir, batch_size, trust_artifacts, ignore_lock)
    predictor = Predictor(run_dir, data_dir, batch_size, trust_artifacts, ignore_lock)
    entries = list_inputs(inputs, predictor.serving)
    for row in entries:
        if row.error is not None:
            logger.error("predict: %s: %s", row.path, row.error)
    scored = iter(predictor.predict_files([row.path for row in entries if row.error is None]))
    result = PredictResult([row if row.error is not None else next(scored) for row in entries])
    logger.info("predict: %d scored, %d not scored", len(result.scores), len(result.errors))
    return result


def predict_cv(
    members: Sequence[CVMember],
    inputs: Sequence[str],
    data_dir: str | None = None,
    batch_size: int | None = None,
    trust_artifacts: bool = False,
    ignore_lock: bool = False,
) -> PredictResult:
    """A CV run's ensemble: every iteration's :class:`Predictor` (its model with its own iteration's transform
    graph) scores the inputs, one iteration at a time; a row's score is the mean of the iterations' scores
    (``iterations`` holds each), or the first iteration's error (the serving step is the same for all)."""
    entries: list[Prediction] = []
    per_member: dict[int, list[Prediction]] = {}
    for member in members:
        predictor = Predictor(member.run_dir, data_dir, batch_size, trust_artifacts, ignore_lock)
        if not per_member:
            entries = list_inputs(inputs, predictor.serving)
            for row in entries:
                if row.error is not None:
                    logger.error("predict: %s: %s", row.path, row.error)
        per_member[member.iteration] = predictor.predict_files([row.path for row in entries if row.error is None])
        del predictor
    combined = []
    for scored in zip(*per_member.values(), strict=True):
        failed = next((row for row in scored if row.error is not None), None)
        if failed is not None:
            combined.append(failed)
            continue
        scores = {i: row.score for i, row in zip(per_member, scored, strict=True)}
        combined.append(replace(scored[0], score=float(np.mean(list(scores.values()))), iterations=scores))
    rows = iter(combined)
    result = PredictResult([row if row.error is not None else next(rows) for row in entries])
    logger.info(
        "predict: %d scored by %d models (mean), %d not scored", len(result.scores), len(members), len(result.errors)
    )
    return result


def format_csv(rows: Sequence[Prediction], per_iteration: bool = False) -> str:
    """``id,path,score,error`` per row; scores with 9 significant digits, empty where not scored; for people, so
    spreadsheet-safe (``transforms.csv_cells``). With ``per_iteration`` (a CV run's rows), one more column
    ``score_iter_XX`` per iteration model."""
    iterations = sorted({i for row in rows for i in (row.iterations or {})}) if per_iteration else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"score_iter_{i:02d}" for i in iterations)])
    for row in rows:
        score = "" if row.score is None else f"{row.score:.9g}"
        each = [f"{(row.iterations or {})[i]:.9g}" if i in (row.iterations or {}) else "" for i in iterations]
        writer.writerow([safe_cell(cell) for cell in (row.id, row.path, score, row.error or "", *each)])
    return buffer.getvalue()


def run_predict(
    run_dir: str,
    inputs: Sequence[str],
    out: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
    per_iteration: bool = False,
    trust_artifacts: bool = False,
    ignore_lock: bool = False,
) -> int:
    """CLI body: predict, write the CSV to ``out`` (or stdout); 0 all scored, 1 some inputs not, 2 unusable
    run or dataset (logged, no traceback)."""
    if logging.getLogger().level > logging.DEBUG:  # TF's saved-model loaders log routine INFO lines
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = predict(run_dir, inputs, data_dir, batch_size, trust_artifacts, ignore_lock)
        text = format_csv(result.rows, per_iteration)
        if out is None:
            sys.stdout.write(text)
        else:
            write_text(out, text)
            logger.info("predict: scores written to %s", out)
    except (Exception, KeyboardInterrupt) as error:
        refusal = fault(error)  # a config, dataset, run, OS fault or interrupt: one line; a bug: its traceback
        if refusal is None:
            raise
        logger.error("%s", refusal)
        return 2
    return 1 if result.errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.predict",
        description="Score raw input files with a trained run through the training preprocessing: the dataset "
        "recipe's build step (e.g. the g2net bandpass), its saved tf.Transform graph (train statistics) and the "
        "saved model. Exit code 0: all scored; 1: some inputs could not be scored (error column); 2: unusable run "
        "or dataset.",
    )
    parser.add_argument(
        "--run",
        required=True,
        help="run folder written by `sigforge train` / model.train; a `train --cv` run predicts as the mean of its "
        "iteration models",
    )
    parser.add_argument(
        "--input",
        dest="inputs",
        required=True,
        nargs="+",
        metavar="FILE_OR_DIR",
        help="raw input files (G2Net: .npy strain (3, 4096)) and/or folders searched recursively for the "
        "recipe's input files (local or gs://)",
    )
    parser.add_argument("--out", default=None, help="output CSV id,path,score,error (default: stdout)")
    parser.add_argument(
        "--data",
        default=None,
        help="dataset folder whose stats/transform_fn and build settings to use (default: the run's data_dir)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="files per batch (default: eval batch size)")
    parser.add_argument(
        "--per-iteration",
        action="store_true",
        help="a CV run (train --cv): also write each iteration model's score (columns score_iter_XX); the score "
        "column is their mean",
    )
    parser.add_argument(
        "--trust-artifacts",
        action="store_true",
        help="load the transform graph and model even if they differ from the digests recorded at training "
        "(RUN/digests.json; a warning is logged; default: refuse, exit 2)",
    )
    parser.add_argument(
        "--ignore-lock",
        action="store_true",
        help="read the dataset even while a sigforge run holds its lock (default: refuse, exit 2)",
    )
    add_log_level(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_predict(
        args.run,
        args.inputs,
        args.out,
        args.data,
        args.batch_size,
        args.per_iteration,
        args.trust_artifacts,
        args.ignore_lock,
    )


if __name__ == "__main__":
    raise_on_signals()  # SIGTERM and SIGINT: one line, exit 2, after every finally ran
    sys.exit(main())
