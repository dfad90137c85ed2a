"""Filesystem helpers over Beam's ``FileSystems``, so every path works locally and on ``gs://``.

Stages never call ``open``/``os`` on dataset paths directly; they go through these helpers.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import listing
from transforms.paths import expand_path

_LOG = logging.getLogger(__name__)


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if parts else base


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


def absolute(path: str) -> str:
    """``path`` as it reads from any working directory: a local path made absolute (``~`` and ``$VARS``
    expanded by ``transforms.paths.expand_path``, ``..`` and a trailing ``/`` removed); a URL
    (``gs://bucket/x/``) only loses its trailing ``/``."""
    if is_local(path):
        return os.path.abspath(expand_path(path.removeprefix("file://"), "path"))
    scheme, sep, rest = path.partition("://")
    return scheme + sep + (rest.rstrip("/") or rest)


def exists(path: str) -> bool:
    """True for a file, or for a folder: on object stores (``gs://``, no folders) when any object lies below it.

    ``FileSystems.exists`` alone is true only for an object, so ``gs://bucket/ds/tfrecords`` would never "exist".
    """
    if FileSystems.exists(path):
        return True
    if is_local(path):
        return False
    below = FileSystems.match([path.rstrip("/") + "/**"], limits=[1])[0]
    return bool(below.metadata_list)


def open_read(path: str):
    """A binary read handle (uncompressed, whatever the extension)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def create(path: str):
    """A binary write handle (uncompressed, whatever the extension)."""
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def write_bytes(path: str, data: bytes) -> None:
    with create(path) as handle:
        handle.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def glob(pattern: str) -> list[str]:
    """Sorted paths matching ``pattern`` (``**`` is supported by Beam's matchers)."""
    result = FileSystems.match([pattern])[0]
    return sorted(meta.path for meta in result.metadata_list)


def is_regular_file(path: str) -> bool:
    """True for a regular file (a symlink to one included). Locally a FIFO, a socket, a device, a folder or a
    dangling symlink is not; on object stores every listed object is a regular file. Never opens ``path``."""
    if not is_local(path):
        return True
    try:
        return stat.S_ISREG(os.stat(path.removeprefix("file://")).st_mode)
    except OSError:
        return False


def match_entries(pattern: str) -> list[tuple[str, bool]]:
    """Every entry matching ``pattern`` as ``(path, is_regular_file)`` (``match_with_faults`` without the faults:
    a caller that reads inputs wants those too)."""
    return match_with_faults(pattern)[0]


def match_with_faults(pattern: str) -> tuple[list[tuple[str, bool]], list[listing.Fault]]:
    """Every entry matching ``pattern`` (Beam's glob syntax, ``**`` included) as ``(path, is_regular_file)``, and
    the folders below the pattern's root that could not be listed or followed (``transforms.listing``).

    ``FileSystems.match`` lists only what it can size, so locally a folder named ``x.npy`` or a dangling symlink
    would vanish without a trace; here they are listed (not regular) so that a stage can reject them. Locally a
    folder that cannot be listed, or a symlinked folder that loops, is a fault (never skipped silently), and other
    symlinked folders are followed (Beam's matcher skips them).
    """
    if not is_local(pattern):
        return [(path, True) for path in glob(pattern)], []
    local = pattern.removeprefix("file://")
    root = listing.glob_root(local)
    if root == local:
        return ([(local, is_regular_file(local))] if os.path.lexists(local) else []), []
    regex = re.compile(FileSystems.get_filesystem(local).translate_pattern(local))
    entries, faults = listing.walk(root)
    return [(path, is_regular_file(path)) for path, _ in entries if regex.match(path)], faults


def check_writable(folder: str) -> None:
    """Writes and deletes a probe file in ``folder`` and (locally) in every folder below it; raises OSError when
    one cannot be written, so that a caller can refuse before it deletes anything."""
    folders = [folder]
    if is_local(folder):
        local = folder.removeprefix("file://")
        folders = [path for path, _, _ in os.walk(local)] or [local]
    for path in folders:
        probe = join(path, ".sigforge_write_probe")
        write_bytes(probe, b"")
        delete_files([probe])


def list_tree(folder: str) -> list[str]:
    """Every file under ``folder`` (recursively), sorted; empty if the folder does not exist."""
    if not exists(folder):
        return []
    return glob(join(folder, "**"))


def delete_tree(folder: str) -> None:
    """Deletes ``folder`` (or a single file) and everything below it; a missing path is not an error."""
    if not exists(folder):
        return
    if is_local(folder):
        FileSystems.delete([folder])
        return
    files = list_tree(folder)
    if FileSystems.exists(folder):  # an object of that very name (a file, not a prefix)
        files.append(folder)
    if files:
        FileSystems.delete(files)


def publish(tmp_folder: str, final_folder: str) -> None:
    """Moves a completed ``tmp_folder`` to ``final_folder``.

    Locally this is one ``os.replace`` of the directory, i.e. atomic. On object stores (no directories) each
    object is renamed; readers rely on the manifest entry, written after publishing, to call a stage complete.
    """
    if exists(final_folder):
        delete_tree(final_folder)
    if is_local(tmp_folder):
        local_final = final_folder.removeprefix("file://")
        os.makedirs(os.path.dirname(local_final.rstrip("/")) or ".", exist_ok=True)
        os.replace(tmp_folder.removeprefix("file://"), local_final)
        return
    sources = list_tree(tmp_folder)
    prefix = tmp_folder.rstrip("/") + "/"
    targets = [join(final_folder, src[len(prefix) :]) for src in sources]
    FileSystems.rename(sources, targets)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def makedirs(path: str) -> None:
    """Creates a local folder (a no-op on object stores, where folders do not exist)."""
    if is_local(path):
        os.makedirs(path.removeprefix("file://"), exist_ok=True)


def rename_file(src: str, dst: str) -> None:
    FileSystems.rename([src], [dst])


def delete_files(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)
