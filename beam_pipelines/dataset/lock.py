"""An exclusive lock on a dataset folder for the duration of a run or a stage (docs/ARCHITECTURE.md section 5).

The lock is the file ``OUT/.sigforge.lock``, a small JSON naming the holder (host, pid, start time, command
and a random token). It is created only where the storage itself refuses a second creator, never by
check-then-write:

- local paths: ``O_CREAT | O_EXCL``;
- ``gs://``: an upload with the generation precondition ``if_generation_match=0`` (google-cloud-storage), which
  GCS refuses (``PreconditionFailed``) when the object exists; release deletes with ``if_generation_match`` set
  to the generation this run created, so a run never deletes a lock another run took after it;
- any other scheme: the create-if-absent function registered for it with ``register_create_if_absent``
  (the tests' in-memory ``memfs://`` registers one); a scheme without one is refused (StageError, code
  ``lock_unsupported``) rather than raced.

Every stage also re-reads the lock (``verify``) before ``--overwrite`` deletes and before it publishes, so a run
whose lock was deleted by hand and retaken by another changes nothing. Within one thread the lock is
re-entrant, so ``sigforge run`` holds it across its stages and each stage re-takes it; another thread or
process is refused.

A run that is killed leaves its lock behind. Locally the next run takes a stale lock over, with a WARNING that
names the old holder (``transforms/lockfile.py`` says when a lock is stale: its holder's process on this host is
gone, or the file is unreadable and at least two seconds old); elsewhere the refusal names the holder and says how
to clear it. A lock file whose creation fails (a full disk) is removed again, so it never blocks the rerun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_pipelines.dataset import fs
from beam_pipelines.dataset.errors import DatasetLocked, StageError
from transforms import lockfile

LOCK_FILE = lockfile.LOCK_FILE
_LOG = logging.getLogger(__name__)

CreateIfAbsent = Callable[[str, bytes], bool]
"""``create(path, payload)``: writes ``payload`` at ``path`` and returns True, or returns False (writing nothing)
when ``path`` exists; atomic, so of concurrent callers exactly one gets True."""


@dataclasses.dataclass
class _Held:
    token: str
    depth: int
    handle: Any  # what the store needs to release only its own lock (a GCS generation); None elsewhere
    folders: list[str]  # local folders the lock created, deepest first


_HELD: dict[tuple[str, int], _Held] = {}  # (lock path, thread id) -> this thread's hold


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


# ---- stores: create-if-absent, read and release per scheme ----------------------------------------------------


class _FsReadDelete:
    """Reads and deletes the lock file through Beam's ``FileSystems``; release deletes only a lock file that still
    holds this run's token."""

    def read(self, path: str) -> bytes | None:
        if not fs.exists(path):
            return None
        try:
            return fs.read_bytes(path)
        except OSError:
            return b""  # there but unreadable

    def delete(self, path: str, token: str, handle: Any) -> None:
        if _token_of(self.read(path)) == token:
            fs.delete_files([path])


class _LocalStore(_FsReadDelete):
    """``O_CREAT | O_EXCL``; the folders it had to create are removed again on release when still empty."""

    def create(self, path: str, payload: bytes, folders: list[str]) -> tuple[bool, Any]:
        local = path.removeprefix("file://")
        folders.extend(_missing_folders(os.path.dirname(local) or "."))
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False, None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
        except BaseException:
            os.unlink(local)  # a full disk (or an interrupt) leaves no empty lock file behind
            raise
        return True, None

    def age(self, path: str) -> float | None:
        import time

        try:
            return time.time() - os.stat(path.removeprefix("file://")).st_mtime
        except OSError:
            return None

    def take_over(self, path: str, observed: bytes) -> bool:
        """Removes the stale lock file whose bytes were ``observed``; True when it was that file. It is renamed
        aside first (atomic), so of two runs taking over one stale lock only one removes it, and a fresh lock
        that another run created meanwhile is put back, not deleted."""
        local = path.removeprefix("file://")
        aside = f"{local}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(local, aside)
        except FileNotFoundError:
            return True  # another run removed it: try to create ours
        with open(aside, "rb") as handle:
            moved = handle.read()
        if moved != observed:
            with contextlib.suppress(FileExistsError):
                os.link(aside, local)
            os.unlink(aside)
            return False
        os.unlink(aside)
        return True


class _RegisteredStore(_FsReadDelete):
    """A scheme's registered create-if-absent (``register_create_if_absent``)."""

    def __init__(self, create: CreateIfAbsent):
        self._create = create

    def create(self, path: str, payload: bytes, folders: list[str]) -> tuple[bool, Any]:
        return bool(self._create(path, payload)), None


_GCS_CLIENT: Any = None


def _gcs_client() -> Any:
    """The process's google-cloud-storage client for ``gs://`` locks (created on first use; tests replace this)."""
    global _GCS_CLIENT
    if _GCS_CLIENT is None:
        from google.cloud import storage

        _GCS_CLIENT = storage.Client()
    return _GCS_CLIENT


class _GcsStore:
    """``gs://``: generation preconditions, so GCS itself refuses a second creator and a foreign delete."""

    @staticmethod
    def _blob(path: str) -> Any:
        bucket, _, name = path.removeprefix("gs://").partition("/")
        return _gcs_client().bucket(bucket).blob(name)

    def create(self, path: str, payload: bytes, folders: list[str]) -> tuple[bool, Any]:
        from google.api_core.exceptions import PreconditionFailed

        blob = self._blob(path)
        try:
            blob.upload_from_string(payload, content_type="application/json", if_generation_match=0)
        except PreconditionFailed:
            return False, None
        return True, blob.generation

    def read(self, path: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self._blob(path).download_as_bytes()
        except NotFound:
            return None

    def delete(self, path: str, token: str, handle: Any) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        with contextlib.suppress(NotFound, PreconditionFailed):  # gone, or another run's lock now: leave it
            self._blob(path).delete(if_generation_match=handle)


_STORES: dict[str, Any] = {"gs": _GcsStore()}
_LOCAL = _LocalStore()


def register_create_if_absent(scheme: str, create: CreateIfAbsent) -> None:
    """Lets ``scheme://`` paths be locked: ``create(path, payload)`` must write ``payload`` and return True only
    when ``path`` does not exist, atomically (see ``CreateIfAbsent``). Reads and deletes go through Beam's
    ``FileSystems``."""
    _STORES[scheme] = _RegisteredStore(create)


def _store(path: str) -> Any:
    scheme = FileSystems.get_scheme(path)
    if scheme in (None, "file"):
        return _LOCAL
    if scheme not in _STORES:
        raise StageError(
            f"{path}: cannot lock a dataset folder on {scheme}://: sigforge knows no create-if-absent for that "
            f"filesystem, and a lock without one could be taken by two runs at once. Write the dataset to a local "
            f"path or gs://, or register one (beam_pipelines.dataset.lock.register_create_if_absent)",
            code="lock_unsupported",
        )
    return _STORES[scheme]


def _token_of(data: bytes | None) -> str | None:
    try:
        return json.loads(data).get("token") if data else None
    except (ValueError, AttributeError):
        return None


# ---- the lock -------------------------------------------------------------------------------------------------


def read_holder(out: str) -> dict[str, object] | None:
    """The current holder's record, or None when the folder is not locked."""
    path = lock_path(out)
    data = _store(path).read(path)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
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


def verify(out: str) -> None:
    """Raises DatasetLocked unless the lock file still names this thread's holder: called before a stage deletes
    (``--overwrite``) and before it publishes, so a run that lost its lock (deleted by hand and retaken by
    another run) changes nothing. A no-op where this thread holds no lock on ``out``."""
    path = lock_path(out)
    held = _HELD.get((path, threading.get_ident()))
    if held is not None and (read_holder(out) or {}).get("token") != held.token:
        raise DatasetLocked(
            f"{out}: this run no longer holds {path} (another run replaced or removed it); nothing was "
            "deleted or published by this stage. " + str(_refuse(out)),
            code="lock_lost",
        )


def acquire(out: str, what: str = "") -> None:
    """Takes the lock on ``out`` (re-entrant in this thread); raises DatasetLocked naming the holder, or
    StageError (code ``lock_unsupported``) for a filesystem with no create-if-absent."""
    store = _store(out)
    path = lock_path(out)
    key = (path, threading.get_ident())
    if key in _HELD:
        _HELD[key].depth += 1
        return
    record = _holder_record(what)
    payload = (json.dumps(record, indent=2) + "\n").encode("utf-8")
    folders: list[str] = []
    try:
        for _ in range(3):
            created, handle = store.create(path, payload, folders)
            if created or not _took_over_stale(out, store, path):
                break
    except BaseException:
        _remove_if_empty(folders)
        raise
    if not created:
        _remove_if_empty(folders)
        raise _refuse(out)
    _HELD[key] = _Held(str(record["token"]), 1, handle, folders)


def _took_over_stale(out: str, store: Any, path: str) -> bool:
    """True when the lock file at ``path`` was stale and is now removed (locally; logged as a WARNING naming the
    old holder); False when it may be a live run's, or this store cannot take a lock over."""
    if not hasattr(store, "take_over"):
        return False
    data = store.read(path)
    if data is None:
        return True  # released meanwhile
    reason = lockfile.stale_reason(data, store.age(path))
    if reason is None or not store.take_over(path, data):
        return False
    _LOG.warning("%s: took over a stale lock of %s: %s", out, lockfile.describe(lockfile.parse(data)), reason)
    return True


def release(out: str) -> None:
    """Releases one level of this thread's lock; the file is removed when the outermost holder releases, and
    only while it is still this run's lock."""
    path = lock_path(out)
    key = (path, threading.get_ident())
    held = _HELD[key]
    if held.depth > 1:
        held.depth -= 1
        return
    del _HELD[key]
    _store(path).delete(path, held.token, held.handle)
    _remove_if_empty(held.folders)


def check_unlocked(out: str, what: str, ignore: bool = False) -> None:
    """For readers that take no lock (``audit``; ``report --ignore-lock``): DatasetBusy (code ``locked``) when a
    live run holds ``out``'s lock, a WARNING with ``ignore`` (``transforms/lockfile.py``)."""
    store = _store(out)
    age = getattr(store, "age", lambda path: None)
    lockfile.check_unlocked(out, store.read, age, what, ignore, _LOG)


@contextlib.contextmanager
def dataset_lock(out: str, what: str = "") -> Iterator[None]:
    """``with dataset_lock(out):`` holds the exclusive lock on the dataset folder ``out``."""
    acquire(out, what)
    try:
        yield
    finally:
        release(out)
