"""Per-example strain decoding, validation and build-time preprocessing (numpy only, no Beam).

A G2Net raw sample is a ``.npy`` file holding ``(3, 4096)`` float64 strain (H1, L1, V1; 2 s at 2048 Hz).
Every failure raises ``RejectedInput`` with a short machine-readable ``reason`` (the dead-letter key used by
the pipelines' counters and ``OUT/rejected/*.csv``) and a human-readable ``detail``.

Validation is physical, not only syntactic (docs/ARCHITECTURE.md section 5): the ``.npy`` header is read and
checked before any data (a header declaring 3e12 samples is refused without allocating), the dtype must be a
real float of at least 32 bits, values finite, each channel's standard deviation inside the configured strain
range and not quantized, and the bandpassed result finite again after the float32 cast.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

from transforms import parallel
from transforms.contract import MALFORMED_ROW, RejectedInput
from transforms.recipes.g2net import signal

__all__ = ["MALFORMED_ROW", "RejectedInput"]  # re-used by this recipe's build

# Reasons an input is rejected (the keys of the manifest's ``rejected`` counts).
UNREADABLE_NPY = "unreadable_npy"
TRUNCATED_NPY = "truncated_npy"
WRONG_SHAPE = "wrong_shape"
UNSUPPORTED_DTYPE = "unsupported_dtype"
NON_FINITE = "non_finite"
NON_FINITE_AFTER_CAST = "non_finite_after_cast"
FLAT_CHANNEL = "flat_channel"
AMPLITUDE_OUT_OF_RANGE = "amplitude_out_of_range"
QUANTIZED = "quantized"
FILE_WITHOUT_LABEL = "file_without_label"
LABEL_WITHOUT_FILE = "label_without_file"
DUPLICATE_ID = "duplicate_id"
DUPLICATE_TRUTH_ROW = "duplicate_truth_row"
BAD_LABEL = "bad_label"
LABEL_NOT_DECLARED = "label_not_declared"
MISSING_GROUP = "missing_group"
NOT_A_REGULAR_FILE = "not_a_regular_file"

# Real floats the build accepts (either byte order); float16 cannot hold strain (~1e-21 underflows to 0).
_ACCEPTED_FLOAT_BITS = (32, 64)


def read_npy(handle: BinaryIO, n_channels: int, n_samples: int) -> np.ndarray:
    """Reads one ``.npy`` array from a binary handle, checking the header before reading any data.

    The header (``np.lib.format``) must declare a real float32/float64 array of shape ``(n_channels,
    n_samples)``; otherwise RejectedInput is raised without reading or allocating the declared size. Exactly the
    declared number of bytes must follow (fewer: TRUNCATED_NPY, more: UNREADABLE_NPY).
    """
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as error:
        raise RejectedInput(UNREADABLE_NPY, f"not a readable .npy header: {error}") from None
    check_dtype(dtype)
    if tuple(shape) != (n_channels, n_samples):
        raise RejectedInput(WRONG_SHAPE, f"header declares shape {tuple(shape)}, expected ({n_channels}, {n_samples})")
    expected = n_channels * n_samples * dtype.itemsize
    data = handle.read(expected + 1)
    if len(data) < expected:
        raise RejectedInput(TRUNCATED_NPY, f"header declares {expected} data bytes, file has {len(data)}")
    if len(data) > expected:
        raise RejectedInput(UNREADABLE_NPY, f"more data than the header's {expected} bytes (not one .npy array)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def check_dtype(dtype: np.dtype) -> None:
    """Only real float32/float64 (little- or big-endian) strain is accepted; UNSUPPORTED_DTYPE otherwise."""
    if dtype.kind != "f" or dtype.itemsize * 8 not in _ACCEPTED_FLOAT_BITS:
        raise RejectedInput(UNSUPPORTED_DTYPE, f"dtype {dtype.str} ({dtype}); expected float32 or float64 strain")


def decode_npy(data: bytes, n_channels: int = 3, n_samples: int = 4096) -> np.ndarray:
    """Parses ``.npy`` bytes (no pickles) with the header checks of ``read_npy``."""
    return read_npy(io.BytesIO(data), n_channels, n_samples)


def validate_strain(
    strain: np.ndarray,
    n_channels: int,
    n_samples: int,
    std_range: tuple[float, float] = (1e-24, 1e-17),
    min_distinct_fraction: float = 0.25,
) -> np.ndarray:
    """Checks shape, dtype, finiteness and physical amplitude; returns float64 ``(n_channels, n_samples)``.

    Each channel's standard deviation must lie in ``std_range`` (strain units; real detector strain is ~1e-22 to
    1e-19 before the bandpass); a zero std is FLAT_CHANNEL. A channel with fewer than ``min_distinct_fraction`` of
    its samples distinct is QUANTIZED (integer counts rescaled, clipped or repeated data).
    """
    if strain.shape != (n_channels, n_samples):
        raise RejectedInput(WRONG_SHAPE, f"expected shape ({n_channels}, {n_samples}), got {strain.shape}")
    check_dtype(strain.dtype)
    strain = strain.astype(np.float64, copy=False)
    finite = np.isfinite(strain)
    if not finite.all():
        bad = int((~finite).sum())
        raise RejectedInput(NON_FINITE, f"{bad} NaN/inf values out of {strain.size}")
    flat = strain.max(axis=1) == strain.min(axis=1)
    if flat.any():
        raise RejectedInput(FLAT_CHANNEL, f"channels {np.flatnonzero(flat).tolist()} are constant")
    std = channel_std(strain)
    low, high = std_range
    outside = (std < low) | (std > high)
    if outside.any():
        raise RejectedInput(
            AMPLITUDE_OUT_OF_RANGE,
            f"channel std {std.tolist()} outside [{low:g}, {high:g}] (g2net.min_channel_std/max_channel_std)",
        )
    distinct = distinct_per_channel(strain) / n_samples
    if (distinct < min_distinct_fraction).any():
        raise RejectedInput(
            QUANTIZED,
            f"distinct-value fraction per channel {np.round(distinct, 4).tolist()} below {min_distinct_fraction} "
            "(g2net.min_distinct_fraction)",
        )
    return strain


def distinct_per_channel(strain: np.ndarray) -> np.ndarray:
    """The number of distinct values in each row of finite ``(n_channels, n_samples)``, as ``np.unique`` counts
    them per row (``-0.0 == 0.0``), from one sort of the whole array."""
    ordered = np.sort(strain, axis=1)
    return 1 + np.count_nonzero(ordered[:, 1:] != ordered[:, :-1], axis=1)


def channel_std(strain: np.ndarray) -> np.ndarray:
    """Per-channel standard deviation of ``(n_channels, n_samples)`` float64, computed on values scaled by each
    channel's largest magnitude so that neither 1e300 (squares overflow) nor 1e-310 (squares underflow) breaks it."""
    scale = np.abs(strain).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    return (strain / scale).std(axis=1) * scale[:, 0]


def parse_label(text: str, declared: tuple[int, ...] | None = None) -> int:
    """A label must be an integer (``"1"``, ``"0"``, ``"1.0"``) and, when ``declared`` is given, one of it."""
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise RejectedInput(BAD_LABEL, f"label {text!r} is not an integer") from None
    if not np.isfinite(value) or value != int(value):
        raise RejectedInput(BAD_LABEL, f"label {text!r} is not an integer")
    if declared is not None and int(value) not in declared:
        raise RejectedInput(LABEL_NOT_DECLARED, f"label {int(value)} is not in g2net.labels {list(declared)}")
    return int(value)


def preprocess_npy(
    data: bytes,
    n_channels: int = 3,
    n_samples: int = 4096,
    fs: float = 2048.0,
    low_hz: float = 20.0,
    high_hz: float = 500.0,
    order: int = 8,
) -> np.ndarray:
    """Raw ``.npy`` bytes -> validated, bandpassed strain ``(n_channels, n_samples)`` float32 (physical units).

    The bandpass (zero-phase Butterworth) runs in float64; the result is stored as float32, whose range covers
    strain at ~1e-22 (powers are only ever formed later, in float64). Raises RejectedInput.
    """
    (result,) = preprocess_npy_batch([data], n_channels, n_samples, fs, low_hz, high_hz, order)
    if isinstance(result, RejectedInput):
        raise result
    return result


def preprocess_npy_batch(
    datas: list[bytes],
    n_channels: int = 3,
    n_samples: int = 4096,
    fs: float = 2048.0,
    low_hz: float = 20.0,
    high_hz: float = 500.0,
    order: int = 8,
    std_range: tuple[float, float] = (1e-24, 1e-17),
    min_distinct_fraction: float = 0.25,
) -> list[np.ndarray | RejectedInput]:
    """``preprocess_npy`` over a batch of ``.npy`` bytes; see ``preprocess_arrays``."""
    decoded: list[np.ndarray | RejectedInput] = []
    for data in datas:
        try:
            decoded.append(decode_npy(data, n_channels, n_samples))
        except RejectedInput as error:
            decoded.append(error)
    band = (low_hz, high_hz)
    return preprocess_arrays(decoded, n_channels, n_samples, fs, band, order, std_range, min_distinct_fraction)


def preprocess_arrays(
    arrays: list[np.ndarray | RejectedInput],
    n_channels: int,
    n_samples: int,
    fs: float,
    band: tuple[float, float],
    order: int,
    std_range: tuple[float, float],
    min_distinct_fraction: float,
    threads: int = 1,
) -> list[np.ndarray | RejectedInput]:
    """Each array is validated on its own (a bad one is returned as its RejectedInput, in place), then all valid
    ones are bandpassed in one call, so the filter's initial conditions are computed once per batch instead of
    once per sample; with ``threads`` > 1 that call's rows are cut into blocks filtered on the shared numeric
    pool (``transforms.parallel``: the filter releases the GIL). Results are identical to per-sample calls and
    to any number of threads: the filter runs along the last axis, row by row.
    A result that is not finite after the float32 cast is NON_FINITE_AFTER_CAST.
    """
    results: list[np.ndarray | RejectedInput] = []
    for array in arrays:
        if isinstance(array, RejectedInput):
            results.append(array)
            continue
        try:
            results.append(validate_strain(array, n_channels, n_samples, std_range, min_distinct_fraction))
        except RejectedInput as error:
            results.append(error)
    valid = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    if valid:
        stacked = np.stack([results[i] for i in valid]).reshape(len(valid) * n_channels, n_samples)

        def filter_rows(rows: np.ndarray) -> np.ndarray:
            with np.errstate(over="ignore", invalid="ignore"):  # per thread: numpy's error state is thread-local
                filtered = signal.bandpass(rows, fs=fs, low_hz=band[0], high_hz=band[1], order=order)
                return filtered.astype(np.float32)

        filtered = parallel.rows_in_threads(filter_rows, stacked, threads, np.concatenate)
        filtered = filtered.reshape(len(valid), n_channels, n_samples)
        for k, i in enumerate(valid):
            finite = np.isfinite(filtered[k])
            if not finite.all():
                results[i] = RejectedInput(
                    NON_FINITE_AFTER_CAST, f"{int((~finite).sum())} values not finite after bandpass + float32 cast"
                )
            else:
                results[i] = filtered[k]
    return results


def preprocess_for_build(
    arrays: list[np.ndarray | RejectedInput | bytes], section, threads: int = 1
) -> list[np.ndarray | RejectedInput]:
    """``preprocess_arrays`` with the shape, bandpass and physical bounds of a ``G2NetConfig`` section.

    Items may be ``.npy`` bytes (predict), arrays already read with ``read_npy`` or their RejectedInput (build).
    """
    decoded: list[np.ndarray | RejectedInput] = []
    for item in arrays:
        if isinstance(item, bytes):
            try:
                item = decode_npy(item, section.n_channels, section.n_samples)
            except RejectedInput as error:
                item = error
        decoded.append(item)
    return preprocess_arrays(
        decoded,
        section.n_channels,
        section.n_samples,
        section.sample_rate_hz,
        (section.bandpass.low_hz, section.bandpass.high_hz),
        section.bandpass.order,
        (section.min_channel_std, section.max_channel_std),
        section.min_distinct_fraction,
        threads,
    )
