"""The Keras callbacks of a training run: learning rate and history logged every epoch (``history.csv`` through
tf.io.gfile, so gs:// works), early stopping with the best weights restored, the plateau schedule, TensorBoard."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import keras

from model.artifacts import RunPaths, write_history_csv
from model.config import TrainConfig

logger = logging.getLogger(__name__)


class HistoryCSV(keras.callbacks.Callback):
    """Rewrites ``history.csv`` (via tf.io.gfile, so gs:// works) after every epoch, like Keras' CSVLogger."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        write_history_csv(self.path, self.rows)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs as ``learning_rate``."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def _mode(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"


def tensorboard_available() -> bool:
    """TensorFlow >= 2.21 no longer installs tensorboard, which implements tf.summary."""
    return importlib.util.find_spec("tensorboard") is not None


def make_callbacks(config: TrainConfig, paths: RunPaths) -> tuple[list[keras.callbacks.Callback], Any]:
    """(callbacks, the EarlyStopping instance) in the order they must run (LR logged before history)."""
    stop = keras.callbacks.EarlyStopping(
        monitor=config.early_stopping.monitor,
        mode=_mode(config.early_stopping.monitor),
        patience=config.early_stopping.patience,
        min_delta=config.early_stopping.min_delta,
        restore_best_weights=True,
        verbose=1,
    )
    callbacks: list[keras.callbacks.Callback] = [LearningRateLogger(), stop]
    if config.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=config.plateau.monitor,
                mode=_mode(config.plateau.monitor),
                factor=config.plateau.factor,
                patience=config.plateau.patience,
                min_lr=config.plateau.min_lr,
                verbose=1,
            )
        )
    if tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=paths.tensorboard, write_graph=False, profile_batch=0))
    else:
        logger.warning("the tensorboard package is not installed: no TensorBoard logs (pip install tensorboard)")
    callbacks.append(HistoryCSV(paths.history))
    return callbacks, stop
