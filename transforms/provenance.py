"""Provenance: where each example came from, what the input set was, and what each stage published.

Three records, all sha256 (docs/reliability.md, "Provenance"):

* per example, in every data table: ``source_path`` (the raw file, relative to the build's input folder),
  ``source_sha256`` (that file's sha256) and, for light curves, ``source_rows`` (``path:start-stop`` per FITS
  file, 0-based rows, stop excluded: ``table[start:stop]``). An example cut from several files lists each, joined
  by ``;``, in the same order in the three columns;
* the input set: ``OUT/provenance/inputs.csv`` (``path,sha256,bytes`` per raw file the build looked at, sorted by
  path) and the manifest's ``inputs`` = ``{"digest", "files", "bytes"}``, ``digest`` being the sha256 of the
  ``sha256sum``-style listing ``"<sha256>  <path>\\n"`` of those files sorted by path;
* the published files: the manifest's ``fingerprints`` = ``{path relative to OUT: sha256}`` of every file a stage
  publishes, hashed in the stage's temporary folder just before the rename.

Pure functions over an injected file API (``open_read``; the audit's ``FileAccess``): no Beam, no TensorFlow.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, NamedTuple

from transforms.contract import PROVENANCE_DIR

SOURCE_PATH, SOURCE_SHA256, SOURCE_ROWS = "source_path", "source_sha256", "source_rows"
SOURCE_COLUMNS = (SOURCE_PATH, SOURCE_SHA256)  # every recipe that records provenance; light curves add rows
INPUTS_CSV = f"{PROVENANCE_DIR}/inputs.csv"
INPUTS_KEY, FINGERPRINTS_KEY = "inputs", "fingerprints"  # manifest keys
SEPARATOR = ";"  # between the files of one example
CHUNK = 1 << 20
_INPUTS_HEADER = ("path", "sha256", "bytes")


class FileDigest(NamedTuple):
    """One raw input file: its path (relative to the build's input folder when under it) and content digest."""

    path: str
    sha256: str
    bytes: int


class HashingReader:
    """A read handle that hashes every byte read through it: ``read(n)`` as the wrapped handle's; ``finish()``
    reads (and hashes) what is left and returns ``(sha256 hex, bytes)``, so the file is read exactly once."""

    def __init__(self, handle: BinaryIO):
        self._handle = handle
        self._hash = hashlib.sha256()
        self._bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self._hash.update(data)
        self._bytes += len(data)
        return data

    def finish(self) -> tuple[str, int]:
        while self.read(CHUNK):
            pass
        return self._hash.hexdigest(), self._bytes


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(open_read: Callable[[str], Any], path: str) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of the file ``path``, read in 1 MiB chunks."""
    with open_read(path) as handle:
        return HashingReader(handle).finish()


def sha256_files(open_read: Callable[[str], Any], paths: Iterable[str], threads: int = 0) -> dict[str, tuple[str, int]]:
    """``{path: (sha256, bytes)}``; files are hashed on ``threads`` threads (0: the machine's cores, at most 8;
    hashlib and file reads release the GIL)."""
    paths = list(paths)
    workers = threads or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(paths) <= 1:
        return {path: sha256_file(open_read, path) for path in paths}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(paths, pool.map(lambda path: sha256_file(open_read, path), paths), strict=True))


def relative_to(input_dir: str, path: str) -> str:
    """``path`` relative to ``input_dir`` when it lies below it (a CSV given as an absolute path elsewhere keeps
    its full path; no ``input_dir``: ``path``)."""
    base = input_dir.rstrip("/") + "/"
    return path[len(base) :] if input_dir and path.startswith(base) else path


def resolve_input(input_dir: str, name: str, join: Callable[..., str]) -> str:
    """A config's input path (``g2net.labels_csv``): relative to ``input_dir`` unless absolute or a URL."""
    return name if "://" in name or name.startswith("/") else join(input_dir, name)


def is_regular(path: str) -> bool:
    """Locally: a regular file (after symlinks), as the build's matcher decides; object stores hold only objects."""
    if "://" in path and not path.startswith("file://"):
        return True
    try:
        return stat.S_ISREG(os.stat(path.removeprefix("file://")).st_mode)
    except OSError:
        return False


# ---- the input set -----------------------------------------------------------------------------------------------


def unique_digests(digests: Iterable[FileDigest]) -> list[FileDigest]:
    """Sorted by path, each file once (a retried bundle may report a file twice)."""
    return sorted(set(digests))


def format_inputs(digests: Iterable[FileDigest]) -> str:
    """``OUT/provenance/inputs.csv``: ``path,sha256,bytes``, one line per file, sorted by path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_INPUTS_HEADER)
    writer.writerows(unique_digests(digests))
    return buffer.getvalue()


def parse_inputs(text: str) -> dict[str, FileDigest]:
    """``{path: FileDigest}`` of an ``inputs.csv``."""
    rows = csv.DictReader(io.StringIO(text))
    return {row["path"]: FileDigest(row["path"], row["sha256"], int(row["bytes"])) for row in rows}


def input_set(digests: Iterable[FileDigest]) -> dict[str, Any]:
    """The manifest's ``inputs``: ``digest`` (sha256 of ``"<sha256>  <path>\\n"`` per file, sorted by path),
    ``files`` and ``bytes``."""
    files = unique_digests(digests)
    listing = "".join(f"{d.sha256}  {d.path}\n" for d in files).encode("utf-8")
    return {"digest": sha256_bytes(listing), "files": len(files), "bytes": sum(d.bytes for d in files)}


def compare_inputs(recorded: Mapping[str, FileDigest], current: Mapping[str, FileDigest]) -> dict[str, list[str]]:
    """``{"changed", "appeared", "vanished"}``: sorted paths whose content differs, that are new, that are gone."""
    return {
        "changed": sorted(p for p in recorded.keys() & current.keys() if recorded[p].sha256 != current[p].sha256),
        "appeared": sorted(current.keys() - recorded.keys()),
        "vanished": sorted(recorded.keys() - current.keys()),
    }


# ---- light-curve rows --------------------------------------------------------------------------------------------


def format_rows(spans: Iterable[tuple[str, int, int]]) -> str:
    """``"a.fits:1200-1260;b.fits:0-40"`` from (file, start, stop) spans (0-based rows, stop excluded)."""
    return SEPARATOR.join(f"{name}:{start}-{stop}" for name, start, stop in spans)


def parse_rows(text: str) -> list[tuple[str, int, int]]:
    """The (file, start, stop) spans of a ``source_rows`` cell."""
    spans = []
    for part in text.split(SEPARATOR) if text else []:
        name, _, rows = part.rpartition(":")
        start, _, stop = rows.partition("-")
        spans.append((name, int(start), int(stop)))
    return spans
