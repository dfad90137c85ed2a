"""The one error base of sigforge: every refusal a command reports as one line (exit 2) carries a ``code``.

The code names the kind of refusal (``config``, ``stage``, ``locked``, ``dataset``...), so tests and scripts
check what went wrong without matching the wording of the message, which is written for people. Each class has
its code; a raise site may name a narrower kind:

- ``ConfigError`` (``config``): ``unknown_key`` (only misspelled or misplaced keys), ``placeholder`` (a runner
  profile value still ``CHANGE_ME``);
- ``StageError`` (``stage``): ``missing_stage`` (an earlier stage has not run), ``output_exists`` (no
  ``--overwrite``), ``not_writable`` (``--overwrite`` cannot write; nothing deleted), ``count_mismatch`` (a stage
  read or wrote other counts than it should: lost or repeated elements), ``non_finite``, ``degenerate`` (a
  statistic not positive), ``collapsed`` (normalized train examples constant);
- ``DatasetLocked`` (``locked``): ``lock_lost`` (this run no longer holds the lock it took);
- ``DatasetError`` (``dataset``): ``missing_shard``, ``count_mismatch`` (data tables vs shards),
  ``audit_failed``; its subclasses ``FeatureSpecError`` (``feature_spec``) and ``CorruptShardError``
  (``corrupt_shard``); ``RunError`` (``run``).
"""

from __future__ import annotations

import errno
import re
import signal


class SigforgeError(Exception):
    """A refusal with a stable ``code``; the message says what is wrong and how to fix it."""

    code = "error"

    def __init__(self, message: str = "", code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class OsFault(SigforgeError):
    """The operating system refused a read or write (permission, full disk, a vanished file...): reported as
    one line naming the path, never a traceback."""

    code = "os_error"


class Interrupted(SigforgeError):
    """The command was stopped by SIGINT or SIGTERM (after its cleanup: lock released, temporary files removed)."""

    code = "interrupted"


# An OSError that Beam re-raised as text: "PermissionError: [Errno 13] Permission denied: '/x' [while running ...]"
_WRAPPED_OS_ERROR = re.compile(
    r"\b\w*Error: \[Errno (\d+)\] ([^\[\n]*?)(?::\s*'([^'\n]*)')?\s*(?:\[while running|$)", re.M
)
_WRAPPED_INTERRUPT = re.compile(r"^(KeyboardInterrupt|Terminated)\b:?\s*(SIG\w+)?")


def describe_os_error(number: int | None, strerror: str, filename: str | None, folder: str | None = None) -> str:
    """``<strerror> (<ERRNO NAME>): <path>; <what to do> and rerun``; without a file name, ``folder`` (the
    folder the command was writing) is named instead."""
    name = errno.errorcode.get(number, f"errno {number}") if number is not None else "OSError"
    where = f": {filename}" if filename else (f" (writing in {folder})" if folder else "")
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space",
        errno.EFBIG: "the file system's file size limit was reached; write to another file system",
        errno.EACCES: "fix the permissions",
        errno.EPERM: "fix the permissions",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.ENOENT: "it vanished or never existed",
    }.get(number, "fix the cause")
    return f"{strerror or 'operating system error'} ({name}){where}; {hint} and rerun"


def os_fault(error: BaseException, folder: str | None = None) -> OsFault | None:
    """The OsFault an exception stands for: an OSError itself, or Beam's text re-raise of one (a RuntimeError
    whose message is ``<type>Error: [Errno N] <text>: '<path>' [while running '<step>']``); None otherwise.
    ``folder`` is named when the error names no file (a write to an open file that filled the disk)."""
    if isinstance(error, OSError):
        return OsFault(describe_os_error(error.errno, error.strerror or str(error), error.filename, folder))
    if isinstance(error, RuntimeError) and (match := _WRAPPED_OS_ERROR.search(str(error))):
        return OsFault(describe_os_error(int(match.group(1)), match.group(2).strip(), match.group(3), folder))
    return None


def interruption(error: BaseException) -> Interrupted | None:
    """The Interrupted an exception stands for: a KeyboardInterrupt (SIGINT, or SIGTERM through
    ``raise_on_sigterm``), or Beam's re-raise of one as a RuntimeError; None otherwise."""
    if isinstance(error, KeyboardInterrupt):
        signal_name = str(error).split(" ", 1)[0] if str(error).startswith("SIG") else "SIGINT"
    elif isinstance(error, RuntimeError) and (match := _WRAPPED_INTERRUPT.match(str(error))):
        signal_name = match.group(2) or ("SIGTERM" if match.group(1) == "Terminated" else "SIGINT")
    else:
        return None
    return Interrupted(
        f"interrupted by {signal_name}: nothing half-written was published, the stage's temporary folder and the "
        "dataset lock were removed; rerun the command (a stage that had finished is kept: pass --overwrite to "
        "redo it)"
    )


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM (``raise_on_sigterm``), so that ``finally`` blocks run as on Ctrl-C."""


def _raise_interrupt(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    raise (Terminated if signum == signal.SIGTERM else KeyboardInterrupt)(name)


def raise_on_signals() -> None:
    """Makes SIGTERM and SIGINT raise (Terminated / KeyboardInterrupt, with the signal's name as the message, so
    Beam's re-raise keeps the type) in the main thread: every ``finally`` (lock release, temporary folders)
    runs. For executables only (``sigforge``, ``python -m model.train``...), never in a library or test."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
