"""Logging of the ``sigforge`` commands: sigforge's own lines by default, every library's with ``-v``.

By default the root logger is at INFO, the libraries sigforge runs on (Beam, TensorFlow, absl, tfx_bsl,
tf.Transform, ...) at WARNING, and a few warnings those libraries print on every tf.Transform run although they
are harmless for sigforge (listed in ``BENIGN_WARNINGS``, each with its reason) are dropped. sigforge's stage
internals log at DEBUG. ``-v`` shows everything at DEBUG. Errors are never filtered.

TensorFlow 2.21's C++ start-up lines (oneDNN, CUDA stubs) are written by absl before its logging is initialised,
so ``TF_CPP_MIN_LOG_LEVEL`` does not hold them back; ``import_tensorflow_quietly`` imports TensorFlow with the
process's stderr captured and writes back every captured line except C++ ``I``-level (info) lines, absl's
"before InitializeLog" notice and, on a machine without a usable GPU, TensorFlow's "failed call to cuInit" (it is
made to happen inside that window by listing the devices; the line is logged at DEBUG instead: a dataset build
uses no GPU).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

LIBRARY_LOGGERS = (
    "apache_beam",
    "tensorflow",
    "absl",
    "tfx_bsl",
    "tensorflow_transform",
    "tensorflow_metadata",
    "matplotlib",
    "PIL",
    "h5py",
    "google",
    "urllib3",
    "py.warnings",
    "FlinkJarJobServer",  # Beam's FlinkRunner logs every line of the Flink job server's output at INFO
)

# Library warnings printed by every tf.Transform run in TF1-compat mode (which sigforge chooses on purpose,
# docs/ARCHITECTURE.md section 2) or by TensorFlow's deprecation notices of the APIs tf.Transform calls.
BENIGN_WARNINGS = (
    re.compile(r"Tensorflow Transform is running in tf\.compat\.v1 mode"),  # force_tf_compat_v1=True is chosen
    re.compile(r"From \S+: .*(is deprecated|will be removed)"),  # TF deprecation notices of tf.Transform's calls
    re.compile(r"Issue encountered when serializing"),  # "probably safe to ignore", TF says itself
    re.compile(r"No semi_persistent_directory found"),  # multi-processing workers: Beam's worker start-up notice
    re.compile(r"^BatchElements statistics: "),  # Beam 2.70 logs its batch sizes at INFO on the root logger
)
_NATIVE_INFO = re.compile(rb"^(I\d{4} \d\d:\d\d:[\d.]+ |WARNING: All log messages before absl::InitializeLog)")
_RECORD_START = re.compile(rb"^([IWEF]\d{4} |\d\d:\d\d:\d\d |Traceback|WARNING: )")
_NO_GPU = re.compile(rb"^E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DropBenignWarnings(logging.Filter):
    """Drops the known-harmless library warnings (never an ERROR), and a library's log of an exception that it
    raises on (Beam logs every failing step's traceback before re-raising it to the command)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.split(".")[0] in LIBRARY_LOGGERS:
            return False  # a library logging the exception it raises on: the command reports it (one line)
        if record.levelno >= logging.ERROR:
            return True
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in BENIGN_WARNINGS)


def configure_logging(verbose: bool = False) -> None:
    """Root at INFO (DEBUG with ``verbose``); library loggers at WARNING unless ``verbose``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=_FORMAT, datefmt="%H:%M:%S")
    logging.captureWarnings(True)
    if verbose:
        return
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, DropBenignWarnings) for f in handler.filters):
            handler.addFilter(DropBenignWarnings())


def drop_native_info(lines: list[bytes]) -> list[bytes]:
    """``lines`` without C++ info records (and their continuation lines), absl's pre-initialisation notice and
    the no-GPU cuInit error (logged at DEBUG)."""
    kept, dropping = [], False
    for line in lines:
        if _NO_GPU.match(line):
            logging.getLogger(__name__).debug("no usable GPU: %s", line.decode("utf-8", "replace").strip())
            dropping = True
        elif _NATIVE_INFO.match(line):
            dropping = True
        elif not dropping or _RECORD_START.match(line):
            dropping = False
            kept.append(line)
    return kept


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (and tf.Transform's native libraries) without their C++ info start-up lines."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")  # CUDA's start-up lines, inside the window
            with contextlib.suppress(ImportError):
                import tensorflow_transform  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = drop_native_info(captured.read().splitlines(keepends=True))
            if kept:
                sys.stderr.buffer.write(b"".join(kept))
                sys.stderr.flush()
