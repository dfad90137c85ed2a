"""One process-wide thread pool for numeric work that releases the GIL (no Beam here).

numpy and scipy release the GIL in their compiled loops: ``scipy.signal.sosfiltfilt`` over 2 row blocks on 2
threads takes half the time of one call over all rows. So a batched step can cut its rows into blocks and filter
them on every core of the process, even under the in-memory FnApiRunner, which runs one bundle at a time. Only
the GIL-free part belongs in the pool: Python-level work (parsing, validation, protobufs) gains nothing from
threads and slows the others down. The pool is shared by every caller in the process, so the worker threads of
the multi-threaded runner never run more numeric threads than it has.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_count(configured: int) -> int:
    """``configured`` threads, or ``usable_cores()`` for 0 (the ``build.numeric_threads`` default)."""
    return configured if configured > 0 else usable_cores()


def blocks(n: int, parts: int) -> list[slice]:
    """``range(n)`` as at most ``parts`` contiguous, non-empty slices of near-equal size, in order."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    out, start = [], 0
    for index in range(parts if n else 0):
        end = start + size + (1 if index < extra else 0)
        out.append(slice(start, end))
        start = end
    return out


def map_blocks(fn: Callable[[slice], R], n: int, threads: int) -> list[R]:
    """``fn(block)`` for ``range(n)`` cut into ``threads`` blocks, in order, on the shared pool of that many
    threads (on the calling thread when there is one block). An exception of ``fn`` is raised here."""
    parts = blocks(n, threads)
    if len(parts) <= 1:
        return [fn(part) for part in parts]
    with _LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sigforge-numeric")
    return list(pool.map(fn, parts))


def rows_in_threads(fn: Callable[[T], T], array: T, threads: int, concatenate: Callable[[Sequence[T]], T]) -> T:
    """``fn`` applied to row blocks of ``array`` on ``threads`` threads, the results joined by ``concatenate``:
    for a row-wise ``fn`` (each output row depends only on its input row) equal to ``fn(array)``."""
    parts = map_blocks(lambda rows: fn(array[rows]), len(array), threads)
    return parts[0] if len(parts) == 1 else concatenate(parts)
