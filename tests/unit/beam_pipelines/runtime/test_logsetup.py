"""Quiet logs: library loggers held at WARNING, known-harmless warnings dropped, native info lines filtered, and
a default ``sigforge run`` printing only sigforge's own lines."""

from __future__ import annotations

import logging
import re

import pytest

from beam_pipelines.runtime import logsetup
from tests.support import report_fixture

OWN_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR) (sigforge|beam_pipelines|transforms)[\w.]*: ")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logsetup.LIBRARY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def test_libraries_at_warning_unless_verbose(restore_logging):
    logging.getLogger().handlers.clear()
    logsetup.configure_logging(verbose=False)
    assert logging.getLogger("apache_beam").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("tensorflow").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("sigforge.progress").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("beam_pipelines.runtime.options").isEnabledFor(logging.DEBUG) is False


def test_benign_warnings_dropped_errors_kept():
    drop = logsetup.DropBenignWarnings()

    def record(level, message):
        return logging.LogRecord("absl", level, __file__, 1, message, (), None)

    assert not drop.filter(record(logging.WARNING, "Tensorflow Transform is running in tf.compat.v1 mode. This"))
    assert not drop.filter(record(logging.WARNING, "From /x/y.py:225: build_tensor_info is deprecated and will be"))
    assert drop.filter(record(logging.WARNING, "something else entirely"))
    assert drop.filter(record(logging.ERROR, "Issue encountered when serializing"))  # errors are never dropped


def test_native_info_lines_and_their_continuations_are_dropped():
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1795972672.912477   17592 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n",
        b"To enable the following instructions: AVX2, in other operations, rebuild TensorFlow\n",
        b"E0000 00:00:1795972814.286079   21936 cuda_platform.cc:52] failed call to cuInit: INTERNAL: (303)\n",
        b"E0000 00:00:1795972814.286079   21936 other.cc:1] a real error\n",
        b"12:00:00 INFO sigforge: kept\n",
    ]
    assert logsetup.drop_native_info(lines) == lines[4:]


def test_default_run_prints_only_sigforge_lines(tmp_path_factory):
    built = report_fixture.tce(tmp_path_factory.mktemp("quiet"))  # a default run: stages, report, paths
    lines = built.stderr.splitlines()
    assert len(lines) <= 30, built.stderr
    noise = [line for line in lines if not OWN_LINE.match(line)]
    assert not noise, "\n".join(noise)
    assert sum("[1/4] build ..." in line for line in lines) == 1
    assert sum("examples/s" in line for line in lines) == 3  # build, split, normalize summaries
    assert any("rejected_by_reason=" in line for line in lines)
    assert "report/index.html" in lines[-1]
