"""The command's process lifecycle: the one place sigforge changes how the interpreter collects and exits.

Two measured tricks, used only by the executables (``sigforge``, ``make demo``, ``python -m model.train``),
never by code that runs inside a test or a Beam worker:

* **Deferred collection.** TensorFlow, Beam and tf.Transform load about half a million objects that live as long
  as the process. The collector is off while they load, and they are then frozen (``gc.freeze``), so later full
  collections skip them (benchmarks/RESULTS.md has the figures).
* **Fast exit.** After a command returned normally every output file is closed and renamed, so the interpreter's
  teardown of TensorFlow's and Beam's native state changes nothing on disk; ``finish`` ends the process with
  ``os._exit`` after flushing logs and the standard streams. A command that raised exits the usual way.

Import this module before any third-party module: its exit handler is registered first and so runs last.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
from typing import NoReturn

# The exit code of a command that returned normally, read by _exit_without_teardown.
_EXIT_CODE: list[int] = []


def _exit_without_teardown() -> None:
    """Registered when this module loads, before any handler but logging's (whose ``logging.shutdown`` it calls
    itself), so it runs after every other exit handler: flushes logs and the standard streams, then ends the
    process with ``os._exit``. The interpreter's own teardown after TensorFlow and Beam
    have loaded (deallocating modules and their native state) is slow and changes nothing on disk: every
    output file was closed and renamed before the command returned. Only for a normal return; a command that
    raised exits the usual way."""
    if not _EXIT_CODE:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written to it anyway
            pass
    os._exit(_EXIT_CODE[0])


atexit.register(_exit_without_teardown)


def finish(code: int) -> NoReturn:
    """``sys.exit(code)`` for an executable's normal return, ending without the interpreter's teardown (above).
    The executable's module must import this one before anything else, so that the handler runs last."""
    _EXIT_CODE.append(code if isinstance(code, int) else 1)
    sys.exit(code)


def defer_collection() -> None:
    """Turns the collector off until ``freeze_loaded_objects`` (call first thing in an executable)."""
    gc.disable()


def freeze_loaded_objects() -> None:
    """Freezes what the imports loaded, so full collections skip it, and turns the collector back on."""
    gc.freeze()
    gc.enable()
