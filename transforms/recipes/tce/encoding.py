"""Serialized raw tf.Examples of the light-curve recipe: one star's examples at once (no Beam here).

Each example becomes ``uid`` / ``target_id`` / ``label``, its float arrays as little-endian float32 bytes
(``flux_window``, or the views) and ``tce_uid`` (bytes), through ``transforms.contract.encode_example``. An
example with a value that is not finite as float32 (e.g. 1e300 in float64) is not written: it becomes a drop
with reason ``non_finite_after_cast``.

``encode_examples`` does for a star's examples what ``encode_tce_example`` does for one, with the same bytes and
the same drops, but casts and checks each feature's arrays of all examples in one numpy call and serializes
them through one reused proto (``contract.ExampleEncoder``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transforms.contract import RAW_DTYPE, ExampleEncoder, RejectedInput, encode_example
from transforms.recipes.tce.recipe import TCE_UID
from transforms.recipes.tce.schema import NON_FINITE_AFTER_CAST, Drop, TceExample


def _not_finite(name: str, finite: np.ndarray) -> RejectedInput:
    return RejectedInput(NON_FINITE_AFTER_CAST, f"{int((~finite).sum())} values of '{name}' not finite as float32")


def encode_tce_example(example: TceExample) -> bytes:
    """The raw tf.Example of one example.

    Raises RejectedInput(NON_FINITE_AFTER_CAST) when an array is not finite as float32 (e.g. 1e300 in float64).
    """
    for name, array in example.arrays.items():
        with np.errstate(over="ignore"):
            finite = np.isfinite(np.asarray(array, dtype=np.float32))
        if not finite.all():
            raise _not_finite(name, finite)
    return encode_example(
        example.uid, example.target_id, example.label, example.arrays, strings={TCE_UID: example.tce_uid}
    )


def _stacked(examples: Sequence[TceExample]) -> dict[str, np.ndarray] | None:
    """Each feature's arrays of all ``examples`` as one (m, n) float32 array, or None where they differ in
    feature names, feature order or array length (then each example is encoded alone)."""
    names = list(examples[0].arrays)
    if not names:
        return None
    shapes = {name: np.shape(examples[0].arrays[name]) for name in names}
    if any(len(shape) != 1 for shape in shapes.values()):
        return None
    for example in examples:
        if list(example.arrays) != names or any(np.shape(example.arrays[n]) != shapes[n] for n in names):
            return None
    with np.errstate(over="ignore"):
        return {name: np.array([e.arrays[name] for e in examples], dtype=RAW_DTYPE) for name in names}


def encode_examples(examples: Sequence[TceExample]) -> tuple[list[tuple[TceExample, bytes]], list[Drop]]:
    """(example, serialized tf.Example) for every example that can be written, in order, and a drop for each
    that cannot (not finite as float32): the same bytes and drops as ``encode_tce_example`` one at a time."""
    encoded: list[tuple[TceExample, bytes]] = []
    drops: list[Drop] = []
    stacked = _stacked(examples) if examples else None
    try:
        encoder = ExampleEncoder(list(stacked), (TCE_UID,)) if stacked is not None else None
    except ValueError:  # a feature named like uid / target_id / label / tce_uid
        encoder = None
    if encoder is None:
        for example in examples:
            try:
                encoded.append((example, encode_tce_example(example)))
            except RejectedInput as error:
                drops.append(Drop(example.uid, error.reason, error.detail))
        return encoded, drops
    finite = {name: np.isfinite(values) for name, values in stacked.items()}
    ok = np.logical_and.reduce([f.all(axis=1) for f in finite.values()])
    for i, example in enumerate(examples):
        if not ok[i]:
            name = next(n for n, f in finite.items() if not f[i].all())  # the first, as one at a time
            error = _not_finite(name, finite[name][i])
            drops.append(Drop(example.uid, error.reason, error.detail))
            continue
        arrays = {name: values[i] for name, values in stacked.items()}
        serialized = encoder.encode(example.uid, example.target_id, example.label, arrays, {TCE_UID: example.tce_uid})
        encoded.append((example, serialized))
    return encoded, drops
