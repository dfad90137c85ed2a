"""``python -m model.train``: train a Keras classifier on a normalized sigforge dataset and write a run folder.

Flow: load config -> :func:`model.data.check_dataset` (every bad input fails here, before any training) ->
run folder -> tf.data pipelines -> :func:`model.networks.build_model` -> ``fit`` with early stopping on the
configured val metric (best weights restored), LR schedule, TensorBoard and history CSV -> save model and
weights -> score val and test, choose the threshold on val, metrics + scores + plots (see
:mod:`model.artifacts` for the folder layout). :func:`train` is what a ``sigforge train`` subcommand calls.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import platform
import posixpath
import sys
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from model.artifacts import make_named_run_dir, make_run_dir, save_weights_npz, write_json, write_scores_csv
from model.bn_recalibration import recalibration_callback, recalibration_stream
from model.callbacks import make_callbacks
from model.cli_common import add_log_level, fault, setup_logging
from model.config import TrainConfig, TrainerConfig, config_from_dict, load_trainer_config
from model.cv import run_cv
from model.data import DatasetInfo, check_dataset, make_dataset, scan_shard
from model.errors import DatasetError
from model.glitch_augment import add_glitch_batches, load_glitch_bank
from model.guards import check_unlocked, digest_dataset, record_digests
from model.injection import check_injection_input, load_bank, make_injection_dataset
from model.kfold import check_split_mode, iteration_overrides, read_kfold
from model.layers import WarmupCosineDecay
from model.networks import build_model
from model.plots import write_plots
from model.scoring import choose_threshold, predict_split, split_result
from transforms.config import ConfigError, apply_overrides
from transforms.errors import raise_on_signals

logger = logging.getLogger(__name__)


def _split_counts(info: DatasetInfo, split: str, config: TrainerConfig) -> tuple[int, int]:
    """(examples, positives) of a split, counting through its shards if the check did not."""
    s = info.splits[split]
    if s.n_examples is not None and s.n_positive is not None:
        return s.n_examples, s.n_positive
    counts = [scan_shard(p, info.parse_spec, config.data.label_feature) for p in s.shards]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def class_weights(config: TrainConfig, n_examples: int, n_positive: int) -> dict[int, float] | None:
    """Keras ``class_weight``: None, the configured dict, or "balanced" = n / (2 * n_class)."""
    if config.class_weight == "none":
        return None
    if isinstance(config.class_weight, dict):
        return {int(k): float(v) for k, v in config.class_weight.items()}
    n_negative = n_examples - n_positive
    if n_positive == 0 or n_negative == 0:
        raise DatasetError(f"class_weight=balanced needs both labels in train, got {n_negative} / {n_positive}")
    return {0: n_examples / (2.0 * n_negative), 1: n_examples / (2.0 * n_positive)}


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam/AdamW at ``learning_rate`` or, for ``lr_schedule: cosine``, a :class:`WarmupCosineDecay`."""
    learning_rate: Any = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = WarmupCosineDecay(
            peak_lr=config.learning_rate,
            total_steps=config.epochs * steps_per_epoch,
            warmup_steps=round(config.cosine.warmup_epochs * steps_per_epoch),
            final_lr=config.learning_rate * config.cosine.final_lr_fraction,
        )
    kwargs: dict[str, Any] = {"learning_rate": learning_rate}
    if config.clipnorm is not None:
        kwargs["clipnorm"] = config.clipnorm
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **kwargs)
    return keras.optimizers.Adam(**kwargs)


def compile_model(network: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    network.compile(
        optimizer=optimizer,
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.AUC(name="auc", num_thresholds=500),
            keras.metrics.AUC(curve="PR", name="pr_auc", num_thresholds=500),
            keras.metrics.BinaryAccuracy(name="accuracy"),
        ],
    )


def resolve_config(config: TrainerConfig | str, overrides: Sequence[str] = ()) -> tuple[TrainerConfig, str | None]:
    """(config, source path): a path is loaded with overrides; a config object gets the overrides applied."""
    if isinstance(config, str):
        return load_trainer_config(config, overrides), config
    if overrides:
        return config_from_dict(apply_overrides(config.model_dump(mode="json"), overrides), "<overrides>"), None
    return config, None


def train(
    data_dir: str,
    config: TrainerConfig | str,
    out_dir: str,
    *,
    name: str | None = None,
    overrides: Sequence[str] = (),
    run_folder: str | None = None,
    ignore_lock: bool = False,
) -> str:
    """Trains on ``data_dir`` with ``config`` (object or YAML path) and writes ``out_dir/{name}_{ts}/``.

    Args:
      data_dir: normalized dataset folder (local or gs://), layout in :mod:`model.data`.
      config: a :class:`TrainerConfig` or the path of a trainer YAML.
      out_dir: folder receiving the run folder (created if needed).
      name: run name (default ``config.name``).
      overrides: ``dotted.key=value`` settings applied on top of ``config``.
      run_folder: write ``out_dir/{run_folder}/`` (files still named ``{name}*``) instead (a CV iteration).
      ignore_lock: read ``data_dir`` even while a live sigforge run holds its lock (a WARNING; default: refuse,
        code ``locked``).
    Returns:
      The run folder path.
    Raises:
      ConfigError, DatasetError (and subclasses): before any training or output.
    """
    config, source = resolve_config(config, overrides)
    name = name or config.name
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"invalid run name {name!r}")
    keras.utils.set_random_seed(config.seed)
    if config.train.deterministic_ops:
        tf.config.experimental.enable_op_determinism()

    # Every dataset problem surfaces here, before a run folder exists.
    check_split_mode(data_dir, config, read_kfold(data_dir))  # a k-fold dataset trains one iteration's view
    check_unlocked(data_dir, "train", ignore_lock)
    info = check_dataset(data_dir, config)
    dataset_digests = digest_dataset(data_dir)  # what the run depends on, as it was when training started
    n_train, n_train_pos = _split_counts(info, "train", config)
    steps_per_epoch = config.train.steps_per_epoch or math.ceil(n_train / config.data.batch_size)
    injecting = config.data.injection.enabled
    if injecting:
        # Positives are made on the fly from the noise-only examples (model/injection.py): labels are balanced
        # by data.injection.positive_fraction, so no class weights from the split's counts.
        check_injection_input(info, config)
        if n_train_pos == n_train:
            raise DatasetError(f"data.injection needs noise-only (label 0) train examples; {data_dir} has none")
        weights = None
        bank = load_bank(data_dir, config.data.injection, config.data.stats_subdir)
    else:
        weights = class_weights(config.train, n_train, n_train_pos)
        if n_train_pos in (0, n_train):
            logger.warning("the train split has a single label (%d of %d positive)", n_train_pos, n_train)

    paths = make_run_dir(out_dir, name) if run_folder is None else make_named_run_dir(out_dir, run_folder, name)
    logger.info("run folder %s", paths.run_dir)
    write_json(
        paths.config,
        {
            "prefix": paths.prefix,
            "run_name": name,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data_dir": data_dir,
            "manifest": {"path": info.manifest_path, "sha256": info.manifest_sha256},
            "config_source": source,
            "overrides": list(overrides),
            "config": config.model_dump(mode="json"),
            "input_spec": {k: list(v) for k, v in info.input_spec.items()},
            "dataset": info.summary(),
            "steps_per_epoch": steps_per_epoch,
            "class_weight": weights,
            "versions": {
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
            },
        },
    )

    if injecting:
        train_ds = make_injection_dataset(info, config, bank)  # endless: epochs are steps_per_epoch batches
    else:
        train_ds = make_dataset(info, "train", config, training=True)
        if config.train.steps_per_epoch is not None:
            train_ds = train_ds.repeat()
    glitch_bank = load_glitch_bank(data_dir, config.data.glitch_augment) if config.data.glitch_augment.enabled else None
    if glitch_bank is not None:
        train_ds = add_glitch_batches(train_ds, glitch_bank, config.data.glitch_augment, config.seed)
    val_ds = make_dataset(info, "val", config, training=False)
    network = build_model(info.input_spec, config.model)
    compile_model(network, make_optimizer(config.train, steps_per_epoch))
    network.summary(print_fn=lambda line, *args, **kwargs: logger.info("%s", line))
    callbacks, stop = make_callbacks(config.train, paths)
    recalibration = recalibration_callback(
        network,
        lambda: recalibration_stream(info, config, bank if injecting else None, glitch_bank),
        config.train.bn_recalibration_batches,
    )
    callbacks = ([recalibration] if recalibration else []) + callbacks

    started = time.monotonic()
    history = network.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.train.epochs,
        steps_per_epoch=steps_per_epoch if injecting else config.train.steps_per_epoch,
        class_weight=weights,
        shuffle=False,  # the train dataset is shuffled (seeded) by model.data
        callbacks=callbacks,
        verbose=config.train.verbose,
    )
    seconds = time.monotonic() - started

    network.save(paths.model)
    n_weights = save_weights_npz(network.weights, paths.weights)
    logger.info("saved %s and %d weight arrays to %s", paths.model, n_weights, paths.weights)
    record_digests(
        paths.run_dir, [posixpath.basename(paths.model), posixpath.basename(paths.weights)], data_dir, dataset_digests
    )

    # Threshold chosen on val, applied unchanged to val and test.
    scores = {split: predict_split(network, info, split, config) for split in ("val", "test")}
    threshold = choose_threshold(scores["val"], config)
    results = {split: split_result(s, threshold, config) for split, s in scores.items()}
    for split, s in scores.items():
        write_scores_csv(paths.scores(split), s.uids, s.labels, s.scores)
    epochs_run = len(history.history.get("loss", []))
    best_epoch = getattr(stop, "best_epoch", None)
    write_json(
        paths.metrics,
        {
            "prefix": paths.prefix,
            "threshold": {
                "method": config.evaluation.threshold,
                "value": threshold,
                "chosen_on": "val",
            },
            "splits": {split: r.metrics for split, r in results.items()},
            "training": {
                "epochs_run": epochs_run,
                "best_epoch": None if best_epoch is None else int(best_epoch) + 1,
                "monitor": config.train.early_stopping.monitor,
                "best_monitor_value": float(stop.best) if stop.best is not None else None,
                "stopped_early": epochs_run < config.train.epochs,
                "seconds": seconds,
                "steps_per_epoch": steps_per_epoch,
                "n_parameters": int(network.count_params()),
                "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            },
        },
    )
    write_plots(paths.plots, paths.prefix, history.history, results, focus="test")
    test = results["test"].metrics
    logger.info(
        "test: ROC-AUC %.4f, PR-AUC %.4f, F1 %.4f at threshold %.4g (chosen on val)",
        _nan(test["roc_auc"]),
        _nan(test["pr_auc"]),
        _nan(test["f1"]),
        threshold,
    )
    return paths.run_dir


def train_cv(
    data_dir: str,
    config: TrainerConfig | str,
    out_dir: str,
    *,
    name: str | None = None,
    overrides: Sequence[str] = (),
    ignore_lock: bool = False,
) -> str:
    """``--cv``: one :func:`train` run per iteration of the k-fold dataset ``data_dir`` into
    ``out_dir/{name}_cv_{ts}/iter_XX/``, plus the CV outputs (:mod:`model.cv`); returns the CV run folder."""
    resolved, source = resolve_config(config, overrides)

    def one(extra: Sequence[str], cv_dir: str, folder: str, prefix: str) -> str:
        return train(
            data_dir,
            config,
            cv_dir,
            name=prefix,
            overrides=[*overrides, *extra],
            run_folder=folder,
            ignore_lock=ignore_lock,
        )

    return run_cv(data_dir, resolved, out_dir, one, name=name or resolved.name, source=source, overrides=overrides)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.train",
        description="Train a Keras classifier on a normalized sigforge dataset. The dataset is checked first "
        "(manifest, tf.Transform metadata, feature spec vs model inputs, every shard read through); any problem "
        "stops the run before training. Output: OUT/{name}_{YYYYMMDD_HHMM}/ with the .keras model, weights .npz, "
        "config/metrics JSON, history.csv, per-example scores, TensorBoard logs and plots.",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="dataset folder (local or gs://) holding manifest.json, stats/transformed_metadata/ and "
        "{data.subdir}/{train,val,test}/*.tfrecord shards",
    )
    parser.add_argument(
        "--config", required=True, help="trainer YAML, e.g. run_configs/train_g2net.yaml or train_tce.yaml"
    )
    parser.add_argument("--out", required=True, help="folder receiving the run folder (local or gs://)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted key, value read as YAML (repeatable), e.g. "
        "--set train.epochs=5 --set model.filters=[16,32,64,128]",
    )
    parser.add_argument(
        "--name", default=None, help="run name used in the folder and file names (default: the config's name)"
    )
    folds = parser.add_mutually_exclusive_group()
    folds.add_argument(
        "--cv",
        action="store_true",
        help="k-fold dataset (OUT/split/folds.json): train one model per iteration on norm/cv_XX with stats/cv_XX "
        "into OUT/{name}_cv_{ts}/iter_XX/, plus cv_metrics.csv, oof_predictions.csv, summary.json, cv_run.json",
    )
    folds.add_argument(
        "--iteration",
        type=int,
        default=None,
        metavar="N",
        help="k-fold dataset: train iteration N alone (norm/cv_NN with stats/cv_NN) as an ordinary run",
    )
    parser.add_argument(
        "--ignore-lock",
        action="store_true",
        help="train even while a sigforge run holds the dataset's lock (it is being written; default: refuse)",
    )
    add_log_level(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 2 on a config, dataset or run error (logged with its ``code`` on the
    log record, no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.iteration is not None and args.iteration < 0:
        parser.error(f"--iteration must be 0 or more, got {args.iteration}")
    setup_logging(args.log_level)
    try:
        if args.cv:
            run_dir = train_cv(
                args.data, args.config, args.out, name=args.name, overrides=args.overrides, ignore_lock=args.ignore_lock
            )
        else:
            overrides = list(args.overrides)
            if args.iteration is not None:
                overrides += iteration_overrides(resolve_config(args.config, overrides)[0], args.iteration)
            run_dir = train(
                args.data, args.config, args.out, name=args.name, overrides=overrides, ignore_lock=args.ignore_lock
            )
    except (Exception, KeyboardInterrupt) as error:
        refusal = fault(error)  # a config, dataset, run, OS fault or interrupt: one line; a bug: its traceback
        if refusal is None:
            raise
        logger.error("%s", refusal, extra={"code": getattr(refusal, "code", None)})
        return 2
    logger.info("done: %s", run_dir)
    return 0


if __name__ == "__main__":
    # TensorFlow and Keras, loaded with this module, live as long as the process: frozen, later collections skip
    # them (the same deferred collection as the sigforge executable; beam_pipelines/runtime/process.py)
    gc.freeze()
    raise_on_signals()  # SIGTERM and SIGINT: one line, exit 2, after every finally ran
    sys.exit(main())
