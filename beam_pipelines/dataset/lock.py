"""An exclusive lock on a dataset folder for the duration of a run or a stage (docs/ARCHITECTURE.md section 5).

The lock is the file ``OUT/.sigforge.lock``, a small JSON naming the holder (host, pid, start time, command
and a random token). It is created with create-if-absent semantics as far as the filesystem allows: locally
``O_CREAT | O_EXCL`` (atomic); on object stores, which have no such primitive through Beam's ``FileSystems``, the
holder checks that no lock exists, writes its own, reads it back, waits ``settle_seconds()`` (2 s) and reads it
back again: of writers that all passed the check in the same round trip, only the last one to write still
finds its token, and the others refuse. Every stage also re-reads the lock (``verify``) before ``--overwrite``
deletes and before it publishes. What remains: a writer whose check and write are more than the settle time
apart can still overwrite a lock taken meanwhile; that holder then finds the foreign token at its next
``verify`` and stops without deleting or publishing (its pipeline's work is lost, the data stays true). Within
one thread the lock is re-entrant, so ``sigforge run`` holds it across its stages and each stage re-takes it;
another thread or process is refused.

A run that is killed leaves its lock behind; the refusal names the holder and says how to clear a stale one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import DatasetLocked

LOCK_FILE = ".sigforge.lock"
_HELD: dict[tuple[str, int], tuple[str, int]] = {}  # (lock path, thread id) -> (token, depth)
_CREATED: dict[tuple[str, int], list[str]] = {}  # (lock path, thread id) -> local folders the lock created


def lock_path(out: str) -> str:
    return fs.join(out, LOCK_FILE)


def _holder_record(what: str) -> dict[str, object]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": what or " ".join(sys.argv[:3]),
        "token": uuid.uuid4().hex,
    }


def read_holder(out: str) -> dict[str, object] | None:
    """The current holder's record, or None when the folder is not locked."""
    path = lock_path(out)
    if not fs.exists(path):
        return None
    try:
        return json.loads(fs.read_text(path))
    except (OSError, ValueError):
        return {"host": "?", "pid": "?", "started": "?", "command": "unreadable lock file"}


def _refuse(out: str) -> DatasetLocked:
    holder = read_holder(out) or {}
    return DatasetLocked(
        f"{out} is locked by another run: host {holder.get('host')} pid {holder.get('pid')} started "
        f"{holder.get('started')} ({holder.get('command')}). Wait for it to finish; if that process no longer "
        f"exists, the lock is stale: delete {lock_path(out)} and run again"
    )


def _missing_folders(folder: str) -> list[str]:
    """The folders of ``folder``'s local path that do not exist yet, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _remove_if_empty(folders: list[str]) -> None:
    """Removes the folders the lock created (deepest first) that are still empty: a refused or failed-before-
    output stage leaves no new folder behind."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return  # not empty (the stage wrote something) or already gone: keep it and its parents


def _create_local(path: str, payload: bytes, created: list[str]) -> bool:
    local = path.removeprefix("file://")
    created.extend(_missing_folders(os.path.dirname(local) or "."))
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    try:
        fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
    return True


def settle_seconds() -> float:
    """How long an object-store lock waits after writing before it re-reads its token (``SIGFORGE_LOCK_SETTLE_S``,
    default 2 s): a competitor that found no lock in the same round trip writes within this time."""
    return float(os.environ.get("SIGFORGE_LOCK_SETTLE_S", "2"))


def _token_at(path: str) -> str | None:
    try:
        return json.loads(fs.read_text(path)).get("token")
    except (OSError, ValueError, AttributeError):
        return None


def _create_remote(path: str, payload: bytes, token: str) -> bool:
    """Check, write, read back, wait ``settle_seconds``, read back again: of writers that raced past the check,
    only the last one still finds its own token; the others refuse (and leave its lock alone)."""
    if fs.exists(path):
        return False
    fs.write_bytes(path, payload)
    if _token_at(path) != token:
        return False
    time.sleep(settle_seconds())
    return _token_at(path) == token


def verify(out: str) -> None:
    """Raises DatasetLocked unless the lock file still names this thread's holder: called before a stage deletes
    (``--overwrite``) and before it publishes, so a run that lost its lock (another writer on an object store, a
    lock deleted by hand) changes nothing. A no-op where this thread holds no lock on ``out``."""
    path = lock_path(out)
    held = _HELD.get((path, threading.get_ident()))
    if held is not None and (read_holder(out) or {}).get("token") != held[0]:
        raise DatasetLocked(
            f"{out}: this run no longer holds {path} (another run replaced or removed it); nothing was "
            "deleted or published by this stage. " + str(_refuse(out)),
            code="lock_lost",
        )


def acquire(out: str, what: str = "") -> None:
    """Takes the lock on ``out`` (re-entrant in this thread); raises DatasetLocked naming the holder."""
    path = lock_path(out)
    key = (path, threading.get_ident())
    if key in _HELD:
        token, depth = _HELD[key]
        _HELD[key] = (token, depth + 1)
        return
    record = _holder_record(what)
    payload = (json.dumps(record, indent=2) + "\n").encode("utf-8")
    folders: list[str] = []
    if fs.is_local(path):
        created = _create_local(path, payload, folders)
    else:
        created = _create_remote(path, payload, str(record["token"]))
    if not created:
        raise _refuse(out)
    _HELD[key] = (str(record["token"]), 1)
    _CREATED[key] = folders


def release(out: str) -> None:
    """Releases one level of this process's lock; the file is removed when the outermost holder releases."""
    path = lock_path(out)
    key = (path, threading.get_ident())
    token, depth = _HELD[key]
    if depth > 1:
        _HELD[key] = (token, depth - 1)
        return
    del _HELD[key]
    folders = _CREATED.pop(key, [])
    current = read_holder(out)
    if current is not None and current.get("token") == token:
        fs.delete_files([path])
    _remove_if_empty(folders)


@contextlib.contextmanager
def dataset_lock(out: str, what: str = "") -> Iterator[None]:
    """``with dataset_lock(out):`` holds the exclusive lock on the dataset folder ``out``."""
    acquire(out, what)
    try:
        yield
    finally:
        release(out)
