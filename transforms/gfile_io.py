"""File reads through ``tf.io.gfile`` (local paths, ``gs://`` and every scheme TensorFlow knows).

This module satisfies ``transforms.audit_folders.FileAccess``, as ``beam_pipelines.dataset.fs`` does over Beam
``FileSystems``; the trainer, which has TensorFlow but no Beam, audits datasets through it.
"""

from __future__ import annotations

import posixpath
from typing import BinaryIO

import tensorflow as tf


def join(base: str, *parts: str) -> str:
    """Path join that keeps ``gs://`` prefixes intact."""
    return posixpath.join(base, *parts) if parts else base


def exists(path: str) -> bool:
    """True for a file or a folder (on ``gs://``: when any object lies below it)."""
    return tf.io.gfile.exists(path)


def open_read(path: str) -> BinaryIO:
    """A binary read handle."""
    return tf.io.gfile.GFile(path, "rb")


def read_bytes(path: str) -> bytes:
    with open_read(path) as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def glob(pattern: str) -> list[str]:
    """Sorted paths matching ``pattern``."""
    return sorted(tf.io.gfile.glob(pattern))


def list_tree(folder: str) -> list[str]:
    """Every file under ``folder`` (recursively), sorted; empty if the folder does not exist."""
    if not tf.io.gfile.isdir(folder):
        return []
    return sorted(join(root, name) for root, _, names in tf.io.gfile.walk(folder) for name in names)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))
