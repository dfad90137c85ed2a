"""Per-example strain decoding, validation and build-time preprocessing (numpy only, no Beam).

A G2Net raw sample is a ``.npy`` file holding ``(3, 4096)`` float64 strain (H1, L1, V1; 2 s at 2048 Hz).
Every failure raises ``RejectedInput`` with a short machine-readable ``reason`` (the dead-letter key used by
the pipelines' counters and ``OUT/rejected/*.csv``) and a human-readable ``detail``.
"""

from __future__ import annotations

import io

import numpy as np

from transforms.contract import MALFORMED_ROW, RejectedInput
from transforms.recipes.g2net import signal

__all__ = ["MALFORMED_ROW", "RejectedInput"]  # re-used by this recipe's build

# Reasons an input is rejected (the keys of the manifest's ``rejected`` counts).
UNREADABLE_NPY = "unreadable_npy"
WRONG_SHAPE = "wrong_shape"
NON_FINITE = "non_finite"
FILE_WITHOUT_LABEL = "file_without_label"
LABEL_WITHOUT_FILE = "label_without_file"
DUPLICATE_ID = "duplicate_id"
BAD_LABEL = "bad_label"
MISSING_GROUP = "missing_group"


def decode_npy(data: bytes) -> np.ndarray:
    """Parses ``.npy`` bytes (no pickles); raises RejectedInput(UNREADABLE_NPY) on truncated/foreign files."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise RejectedInput(UNREADABLE_NPY, f"not a readable .npy file ({len(data)} bytes): {error}") from None


def validate_strain(strain: np.ndarray, n_channels: int, n_samples: int) -> np.ndarray:
    """Checks shape ``(n_channels, n_samples)``, a real numeric dtype and finite values; returns float64."""
    if strain.shape != (n_channels, n_samples):
        raise RejectedInput(WRONG_SHAPE, f"expected shape ({n_channels}, {n_samples}), got {strain.shape}")
    if not np.issubdtype(strain.dtype, np.floating) and not np.issubdtype(strain.dtype, np.integer):
        raise RejectedInput(WRONG_SHAPE, f"expected a real numeric array, got dtype {strain.dtype}")
    strain = strain.astype(np.float64, copy=False)
    finite = np.isfinite(strain)
    if not finite.all():
        bad = int((~finite).sum())
        raise RejectedInput(NON_FINITE, f"{bad} NaN/inf values out of {strain.size}")
    return strain


def parse_label(text: str) -> int:
    """A label must be an integer (``"1"``, ``"0"``, ``"1.0"``); anything else raises RejectedInput(BAD_LABEL)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RejectedInput(BAD_LABEL, f"label {text!r} is not an integer") from None
    if not np.isfinite(value) or value != int(value):
        raise RejectedInput(BAD_LABEL, f"label {text!r} is not an integer")
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
) -> list[np.ndarray | RejectedInput]:
    """``preprocess_npy`` over a batch: each sample is validated on its own (a bad one is returned as its
    RejectedInput, in place), then all valid ones are bandpassed in one call, so the filter's initial
    conditions are computed once per batch instead of once per sample. Results are identical to per-sample
    calls: the filter runs along the last axis, row by row.
    """
    results: list[np.ndarray | RejectedInput] = []
    for data in datas:
        try:
            results.append(validate_strain(decode_npy(data), n_channels, n_samples))
        except RejectedInput as error:
            results.append(error)
    valid = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    if valid:
        stacked = np.stack([results[i] for i in valid]).reshape(len(valid) * n_channels, n_samples)
        filtered = signal.bandpass(stacked, fs=fs, low_hz=low_hz, high_hz=high_hz, order=order)
        filtered = filtered.astype(np.float32).reshape(len(valid), n_channels, n_samples)
        for k, i in enumerate(valid):
            results[i] = filtered[k]
    return results


def preprocess_for_build(datas: list[bytes], section) -> list[np.ndarray | RejectedInput]:
    """``preprocess_npy_batch`` with the shape and bandpass of a ``G2NetConfig`` section."""
    return preprocess_npy_batch(
        datas,
        n_channels=section.n_channels,
        n_samples=section.n_samples,
        fs=section.sample_rate_hz,
        low_hz=section.bandpass.low_hz,
        high_hz=section.bandpass.high_hz,
        order=section.bandpass.order,
    )
