"""``memfs://``: an in-memory Beam ``FileSystem`` with object-store semantics, for remote-path tests.

It behaves like ``gs://`` as Beam's ``GCSFileSystem`` presents it: there are no directories, only objects named by
full paths; ``exists`` is true for an object and false for a "folder" prefix; ``mkdirs`` does nothing; ``rename``
is copy + delete; ``delete`` of a path ending in ``/`` removes everything under it. Objects live in one
process-global dict, so it works with the in-memory FnApiRunner (workers in this process) and nowhere else.
Importing this module registers the scheme (Beam finds ``FileSystem`` subclasses by their ``scheme()``) and its
atomic create-if-absent with the dataset lock (``create_if_absent``), as GCS's generation precondition is for
``gs://``.
"""

from __future__ import annotations

import io
import threading
import time

from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)

from beam_pipelines.dataset import lock

SCHEME = "memfs"
PREFIX = f"{SCHEME}://"

_LOCK = threading.Lock()
_OBJECTS: dict[str, tuple[bytes, float]] = {}  # path -> (content, last-updated time)


def clear() -> None:
    with _LOCK:
        _OBJECTS.clear()


def paths(prefix: str = PREFIX) -> list[str]:
    """Every object path under ``prefix``, sorted."""
    with _LOCK:
        return sorted(p for p in _OBJECTS if p.startswith(prefix))


def read(path: str) -> bytes:
    with _LOCK:
        return _OBJECTS[path][0]


def write(path: str, data: bytes) -> None:
    with _LOCK:
        _OBJECTS[path] = (bytes(data), time.time())


def create_if_absent(path: str, data: bytes) -> bool:
    """Writes ``data`` at ``path`` and returns True, or returns False when the object exists (atomic)."""
    with _LOCK:
        if path in _OBJECTS:
            return False
        _OBJECTS[path] = (bytes(data), time.time())
        return True


class _Writer(io.BytesIO):
    """A write handle; the object appears (all at once, like a GCS upload) when the handle is closed."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def close(self) -> None:
        if not self.closed:
            write(self._path, self.getvalue())
        super().close()


class MemFileSystem(FileSystem):
    """Beam ``FileSystem`` for ``memfs://bucket/path`` objects (see the module docstring)."""

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        if not basepath.startswith(PREFIX):
            raise ValueError(f"basepath {basepath!r} is not a {PREFIX} path")
        path = basepath
        for part in paths:
            path = path.rstrip("/") + "/" + part.lstrip("/")
        return path

    def split(self, path: str) -> tuple[str, str]:
        path = path.strip()
        if not path.startswith(PREFIX):
            raise ValueError(f"path {path!r} is not a {PREFIX} path")
        cut = path.rfind("/")
        if cut < len(PREFIX):
            return path, ""
        return path[:cut], path[cut + 1 :]

    def mkdirs(self, path: str) -> None:
        """Object stores have no folders."""

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix: str):
        with _LOCK:
            items = [(p, v) for p, v in _OBJECTS.items() if p.startswith(dir_or_prefix)]
        for path, (data, updated) in sorted(items):
            yield FileMetadata(path, len(data), updated)

    def _open(self, path: str, compression_type, writing: bool):
        compression_type = FileSystem._get_compression_type(path, compression_type)
        if writing:
            raw = _Writer(path)
        else:
            with _LOCK:
                if path not in _OBJECTS:
                    raise FileNotFoundError(f"{path}: no such object")
                raw = io.BytesIO(_OBJECTS[path][0])
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._open(path, compression_type, writing=True)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._open(path, compression_type, writing=False)

    def _copy_one(self, src: str, dst: str) -> None:
        with _LOCK:
            if src.endswith("/"):
                pairs = [(p, dst + p[len(src) :]) for p in _OBJECTS if p.startswith(src)]
            elif src in _OBJECTS:
                pairs = [(src, dst)]
            else:
                raise FileNotFoundError(f"{src}: no such object")
            for old, new in pairs:
                _OBJECTS[new] = _OBJECTS[old]

    def copy(self, source_file_names, destination_file_names):
        errors = {}
        for src, dst in zip(source_file_names, destination_file_names, strict=True):
            try:
                self._copy_one(src, dst)
            except OSError as error:
                errors[(src, dst)] = error
        if errors:
            raise BeamIOError("Copy operation failed", errors)

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path: str) -> bool:
        with _LOCK:
            return path in _OBJECTS

    def size(self, path: str) -> int:
        return len(self._get(path)[0])

    def last_updated(self, path: str) -> float:
        return self._get(path)[1]

    def checksum(self, path: str) -> str:
        return str(hash(self._get(path)[0]))

    def metadata(self, path: str) -> FileMetadata:
        data, updated = self._get(path)
        return FileMetadata(path, len(data), updated)

    def _get(self, path: str) -> tuple[bytes, float]:
        with _LOCK:
            if path not in _OBJECTS:
                raise BeamIOError("Object not found", {path: FileNotFoundError(path)})
            return _OBJECTS[path]

    def delete(self, paths):
        """Deletes objects; a path ending in ``/`` deletes everything under it; a missing object is no error."""
        with _LOCK:
            for path in paths:
                if path.endswith("/"):
                    for key in [p for p in _OBJECTS if p.startswith(path)]:
                        del _OBJECTS[key]
                else:
                    _OBJECTS.pop(path, None)


lock.register_create_if_absent(SCHEME, create_if_absent)
