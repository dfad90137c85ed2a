"""TFRecord framing over any binary file handle (Beam ``FileSystems``, ``tf.io.gfile`` or local files).

A record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``, little-endian
(the TFRecord format of TensorFlow). Implemented here on the public ``google_crc32c`` package so that streaming
writers and readers need no private API of Beam or TensorFlow.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import google_crc32c

_MASK_DELTA = 0xA282EAD8


class CorruptRecordError(ValueError):
    """A TFRecord file whose framing or checksums do not hold."""


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: crc32c rotated right by 15 bits plus a constant, modulo 2**32."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode_record(data: bytes) -> bytes:
    """One framed record."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), data, struct.pack("<I", masked_crc32c(data))))


def write_record(handle: BinaryIO, data: bytes) -> None:
    handle.write(encode_record(data))


def read_record(handle: BinaryIO) -> bytes | None:
    """The next record's data, or None at a clean end of file; CorruptRecordError on bad framing."""
    header = handle.read(12)
    if not header:
        return None
    if len(header) != 12:
        raise CorruptRecordError(f"truncated record header ({len(header)} of 12 bytes)")
    length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
    if masked_crc32c(length_bytes) != length_crc:
        raise CorruptRecordError("record length checksum mismatch")
    (length,) = struct.unpack("<Q", length_bytes)
    body = handle.read(length + 4)
    if len(body) != length + 4:
        raise CorruptRecordError(f"truncated record ({len(body)} of {length + 4} bytes)")
    data, data_crc = body[:length], struct.unpack("<I", body[length:])[0]
    if masked_crc32c(data) != data_crc:
        raise CorruptRecordError("record data checksum mismatch")
    return data


def iter_records(handle: BinaryIO) -> Iterator[bytes]:
    """Every record of an open TFRecord file, in order."""
    while (data := read_record(handle)) is not None:
        yield data
