"""One process-wide thread pool for the GIL-releasing numeric work of batched DoFns.

numpy and scipy release the GIL in their compiled loops (``sosfiltfilt``, FFTs, sorts), so a DoFn that gets a
batch can split it into chunks and work on them on every core of the process, even under the in-memory
FnApiRunner, which runs one bundle at a time. The pool is shared by every DoFn instance and runner thread of the
process, so worker threads of the multi-threaded runner never run more numeric threads than it has. Only
numeric work belongs in the pool: Beam's metrics are per thread and are bumped by the DoFn on its own thread.
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


def chunks(items: Sequence[T], parts: int) -> list[Sequence[T]]:
    """``items`` in at most ``parts`` contiguous, non-empty chunks of near-equal size, in order."""
    if not items:
        return []
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def map_chunks(fn: Callable[[Sequence[T]], R], items: Sequence[T], threads: int) -> list[tuple[Sequence[T], R]]:
    """``(chunk, fn(chunk))`` for ``items`` cut into ``threads`` chunks, in order; the chunks run on the shared
    pool of that size (on the calling thread when there is one chunk). An exception of ``fn`` is raised here."""
    parts = chunks(items, threads)
    if len(parts) <= 1:
        return [(part, fn(part)) for part in parts]
    with _LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sigforge-numeric")
    return list(zip(parts, pool.map(fn, parts), strict=True))
