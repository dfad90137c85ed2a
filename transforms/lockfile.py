"""The dataset lock file ``OUT/.sigforge.lock`` as its readers see it: who holds it, and whether that holder is gone.

Writers take and release the lock in ``beam_pipelines/dataset/lock.py``; the trainer, ``predict``, ``audit`` and
``report`` only look at it (``check_unlocked``), so this module imports no Beam. A lock is *stale* when

* its holder ran on this host and that process no longer exists (or is a zombie), or
* the file does not parse (empty or cut short) and was last changed at least ``UNREADABLE_STALE_S`` seconds
  ago: sigforge writes the whole record in one ``write`` right after creating the file, so only a crash (or a
  full disk, which the writer cleans up) leaves such a file, and a live writer finishes within microseconds.

A holder on another host is never judged (its pids are not ours to see): such a lock is live until deleted.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from transforms.errors import SigforgeError

LOCK_FILE = ".sigforge.lock"
UNREADABLE_STALE_S = 2.0


class DatasetBusy(SigforgeError):
    """A reader found the dataset folder locked by a live run (the same code as the writers' refusal)."""

    code = "locked"


def parse(data: bytes | None) -> dict[str, Any] | None:
    """The holder record of a lock file's bytes, or None when they do not parse as a JSON object."""
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def pid_running(pid: int) -> bool:
    """True when process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def stale_reason(data: bytes | None, age_s: float | None) -> str | None:
    """Why a lock file with these bytes (last changed ``age_s`` seconds ago; None: unknown) is stale, or None
    when it may belong to a live run."""
    record = parse(data)
    if record is None:
        if age_s is not None and age_s < UNREADABLE_STALE_S:
            return None  # may be a writer between creating the file and writing it
        return f"the lock file is unreadable ({len(data or b'')} bytes, not a holder record): a crashed run left it"
    pid = record.get("pid")
    if record.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_running(pid):
        return f"its holder, pid {pid} on this host ({record.get('command')}), is no longer running"
    return None


def describe(record: dict[str, Any] | None) -> str:
    record = record or {"command": "unreadable lock file"}
    return (
        f"host {record.get('host', '?')} pid {record.get('pid', '?')} started {record.get('started', '?')} "
        f"({record.get('command', '?')})"
    )


def check_unlocked(
    folder: str,
    read: Callable[[str], bytes | None],
    age: Callable[[str], float | None],
    what: str,
    ignore: bool = False,
    log: logging.Logger | None = None,
) -> None:
    """Raises DatasetBusy (code ``locked``) when a live run holds ``folder``'s lock; ``read(path)`` returns the
    lock file's bytes (None when absent), ``age(path)`` its age in seconds. With ``ignore`` it logs a WARNING
    instead and returns (``--ignore-lock``). A stale lock is ignored with a WARNING."""
    path = folder.rstrip("/") + "/" + LOCK_FILE
    data = read(path)
    if data is None:
        return
    log = log or logging.getLogger(__name__)
    holder = describe(parse(data))
    stale = stale_reason(data, age(path))
    if stale is not None:
        log.warning("%s: %s holds a stale lock (%s); reading it anyway", folder, holder, stale)
        return
    if ignore:
        log.warning(
            "%s is locked by another run (%s); --ignore-lock: %s reads it anyway, and may see a stage half-replaced",
            folder,
            holder,
            what,
        )
        return
    raise DatasetBusy(
        f"{folder} is locked by another run: {holder}; {what} would read a dataset that is being written. Wait "
        "for that run to finish, or pass --ignore-lock to read it anyway"
    )
