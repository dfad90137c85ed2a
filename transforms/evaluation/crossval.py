"""Cross-validation numerics in numpy/scipy (no TensorFlow): confidence intervals over iterations, the k-fold
iteration plan and the out-of-fold coverage checks.

A k-fold dataset (``OUT/split/folds.json``) has k folds of whole targets and a list of iterations, each naming
its ``train``, ``val`` and ``test`` folds. ``sigforge train --cv`` trains one model per iteration; every example
is scored exactly once out of fold, by the iteration whose test fold holds it (the one model that saw neither
the example nor its target). The checks here are what the trainer asserts before writing the out-of-fold table.

Confidence intervals are Student-t intervals over the iterations' values of a metric:
``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`` with ``sd`` the sample standard deviation (``ddof=1``). The
iterations' test folds are disjoint but their training sets overlap, so the interval is the usual, somewhat
optimistic, summary of the spread between folds rather than an exact interval for the true metric.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

LEVEL = 0.95


class CoverageError(ValueError):
    """The folds, iterations or out-of-fold assignment break the k-fold rules; ``problems`` lists each one."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f" (+{len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(shown + more)


def t_interval(values: Iterable[float | None], level: float = LEVEL) -> dict[str, Any]:
    """Mean, sample standard deviation and Student-t confidence interval of the finite ``values``.

    Returns ``n`` (finite values used), ``n_undefined`` (None/NaN/inf values left out, e.g. a ROC-AUC of a fold
    with one class), ``mean``, ``sd`` (ddof=1), ``t`` (the ``(1+level)/2`` quantile with ``n-1`` degrees of
    freedom), ``half_width`` (``t * sd / sqrt(n)``), ``ci_low``, ``ci_high`` and ``level``. Undefined entries are
    NaN: the mean without values, sd and interval with fewer than two.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    raw = [math.nan if v is None else float(v) for v in values]
    finite = np.array([v for v in raw if math.isfinite(v)], dtype=np.float64)
    n = int(finite.size)
    mean = float(finite.mean()) if n else math.nan
    sd = t = half = math.nan
    if n >= 2:
        sd = float(finite.std(ddof=1))
        t = float(stats.t.ppf((1.0 + level) / 2.0, n - 1))
        half = t * sd / math.sqrt(n)
    return {
        "n": n,
        "n_undefined": len(raw) - n,
        "mean": mean,
        "sd": sd,
        "level": level,
        "t": t,
        "half_width": half,
        "ci_low": mean - half,
        "ci_high": mean + half,
    }


def summarize(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], level: float = LEVEL) -> dict[str, Any]:
    """``{metric: t_interval(row[metric] for row in rows)}`` for each of ``metrics`` (a missing value counts as
    undefined)."""
    return {name: t_interval((row.get(name) for row in rows), level) for name in metrics}


def check_iterations(k: int, iterations: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems of a k-fold iteration plan (empty when sound).

    Each iteration is ``{"iteration": i, "train": [folds], "val": [folds], "test": [fold]}``: iterations are
    numbered 0, 1, ... in order; folds are integers in ``[0, k)``; an iteration's train, val and test folds are
    disjoint, non-empty, and together every fold; its test is one fold; and the test folds of the iterations
    are every fold exactly once (so each example is scored out of fold exactly once).
    """
    problems: list[str] = []
    if k < 2:
        problems.append(f"k must be at least 2, got {k}")
    tested: Counter[int] = Counter()
    for position, item in enumerate(iterations):
        number = item.get("iteration")
        name = f"iteration {number}"
        if number != position:
            problems.append(f"iteration at position {position} is numbered {number!r} (expected {position})")
        parts = {role: item.get(role) for role in ("train", "val", "test")}
        if not all(isinstance(v, list) and v and all(isinstance(f, int) for f in v) for v in parts.values()):
            problems.append(f"{name}: train, val and test must be non-empty lists of fold numbers, got {parts}")
            continue
        listed = [f for folds in parts.values() for f in folds]
        outside = sorted({f for f in listed if not 0 <= f < k})
        if outside:
            problems.append(f"{name}: folds {outside} are not in [0, {k})")
        repeated = sorted(f for f, c in Counter(listed).items() if c > 1)
        if repeated:
            problems.append(f"{name}: folds {repeated} are in more than one of train/val/test")
        unused = sorted(set(range(k)) - set(listed))
        if unused:
            problems.append(f"{name}: folds {unused} are in none of train/val/test")
        if len(parts["test"]) != 1:
            problems.append(f"{name}: test must be one fold, got {parts['test']}")
        tested.update(parts["test"])
    never = sorted(set(range(k)) - set(tested))
    if never:
        problems.append(f"folds {never} are the test fold of no iteration")
    twice = sorted(f for f, c in tested.items() if c > 1)
    if twice:
        problems.append(f"folds {twice} are the test fold of more than one iteration")
    return problems


def overlaps(groups: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Keys that appear in more than one of ``groups`` (e.g. target ids in two splits): key -> group names."""
    where: dict[str, list[str]] = {}
    for name, keys in groups.items():
        for key in set(keys):
            where.setdefault(key, []).append(name)
    return {key: sorted(names) for key, names in sorted(where.items()) if len(names) > 1}


def check_oof_coverage(universe: Iterable[str], assigned: Mapping[Any, Sequence[str]]) -> None:
    """Asserts an out-of-fold assignment scores every example exactly once.

    ``universe``: every example id of the dataset; ``assigned``: iteration -> the ids it scored out of fold.
    Raises :class:`CoverageError` listing ids scored twice (within or across iterations), ids never scored and
    ids scored that are not in the dataset.
    """
    expected = set(universe)
    counts: Counter[str] = Counter()
    seen_in: dict[str, list[Any]] = {}
    for iteration, ids in assigned.items():
        for uid in ids:
            counts[uid] += 1
            seen_in.setdefault(uid, []).append(iteration)
    problems = []
    twice = sorted(uid for uid, c in counts.items() if c > 1)
    if twice:
        shown = ", ".join(f"{u} (iterations {seen_in[u]})" for u in twice[:5])
        problems.append(f"{len(twice)} example(s) scored more than once: {shown}")
    missing = sorted(expected - set(counts))
    if missing:
        problems.append(f"{len(missing)} example(s) never scored out of fold: {missing[:5]}")
    unknown = sorted(set(counts) - expected)
    if unknown:
        problems.append(f"{len(unknown)} scored example(s) are not in the dataset: {unknown[:5]}")
    if problems:
        raise CoverageError(problems)
