"""The build's record of its input set (transforms/provenance.py): the digest of each raw file, taken from the
bytes the build reads, collected into ``tmp/provenance/inputs.csv``.

A recipe's DoFns tag one ``FileDigest`` per raw file they read (``INPUTS``); a file that is rejected before it is
read whole (no label, no star id) is hashed on its own (``digest_path``), and so are the CSVs (``HashFiles``), so
every regular file the build looked at is listed once.
"""

from __future__ import annotations

import apache_beam as beam

from beam_pipelines.dataset import fs
from transforms import provenance
from transforms.provenance import FileDigest

INPUTS = "inputs"  # tag of the FileDigest outputs


def digest_path(input_dir: str, path: str) -> FileDigest | None:
    """The FileDigest of one raw file, read in chunks; None when it is not a regular file or cannot be read (the
    build rejected it for that, and the audit lists only regular files)."""
    if not fs.is_regular_file(path):
        return None
    try:
        sha256, size = provenance.sha256_file(fs.open_read, path)
    except OSError:
        return None
    return FileDigest(provenance.relative_to(input_dir, path), sha256, size)


def digest_of(input_dir: str, path: str, sha256: str, size: int) -> FileDigest:
    return FileDigest(provenance.relative_to(input_dir, path), sha256, size)


class HashFiles(beam.PTransform):
    """Paths (known on the driver, e.g. the labels CSV) -> their FileDigests."""

    def __init__(self, input_dir: str, paths: list[str]):
        super().__init__()
        self._input_dir = input_dir
        self._paths = paths

    def expand(self, pipeline):
        return (
            pipeline
            | "Paths" >> beam.Create(self._paths)
            | "Digest" >> beam.FlatMap(lambda path, base: [d for d in [digest_path(base, path)] if d], self._input_dir)
        )


def _write_inputs(digests: list[FileDigest], path: str) -> None:
    fs.write_text(path, provenance.format_inputs(digests))


class WriteInputs(beam.PTransform):
    """FileDigests -> one sorted ``inputs.csv`` at ``path`` (written also when there is none)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, digests):
        return digests | "ToList" >> beam.combiners.ToList() | "Write" >> beam.Map(_write_inputs, self._path)
