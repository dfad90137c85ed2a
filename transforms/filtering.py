"""Filter conditions as pure functions (no Beam): does one example, given its data-table row, pass them all?

An example is kept iff it passes every condition (``FilterCondition`` in ``transforms.config``). A removed
example is attributed to the *first* condition (in config order) that removes it; ``Verdict.failed`` also lists
every other condition it fails, for per-condition totals.

Column tests compare the row's text value with the condition's value:
- a numeric ``value`` (or any ``<``, ``<=``, ``>``, ``>=``) is a numeric comparison; a row value that is empty,
  not a number, or NaN cannot be compared, and the example is removed with reason
  ``condition:<name>:non_numeric`` (counted, never silently dropped nor kept);
- a string ``value`` with ``==``/``!=`` is an exact comparison of the stripped text.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.config import ORDER_OPS, ConfigError, FilterCondition

REASON_PREFIX = "condition:"
NON_NUMERIC = "non_numeric"
_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# How many sample values of a column are enough to call it numeric (see ``check_numeric_column``).
_SAMPLE_VALUES = 200


@dataclass(frozen=True)
class Verdict:
    """The outcome for one example: kept, or the first failing condition's reason and a detail message."""

    kept: bool
    reason: str | None = None
    detail: str = ""
    failed: tuple[str, ...] = ()


def reason_of(condition: FilterCondition, non_numeric: bool = False) -> str:
    """The rejection reason of ``condition``: ``condition:<name>`` or ``condition:<name>:non_numeric``."""
    reason = f"{REASON_PREFIX}{condition.name}"
    return f"{reason}:{NON_NUMERIC}" if non_numeric else reason


def parse_id_list(text: str) -> frozenset[str]:
    """Target ids from a list file: one id per line; blank lines and lines starting with ``#`` are skipped."""
    ids = (line.strip() for line in text.splitlines())
    return frozenset(i for i in ids if i and not i.startswith("#"))


def is_numeric_test(condition: FilterCondition) -> bool:
    """Whether a column condition compares numbers (an order op, or a numeric value)."""
    return condition.column is not None and (condition.op in ORDER_OPS or not isinstance(condition.value, str))


def to_number(text: Any) -> float | None:
    """``text`` as a float, or None when it is empty, not a number, or NaN (infinities are numbers)."""
    if isinstance(text, bool):
        return None
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _check_one(
    condition: FilterCondition, row: Mapping[str, Any], id_lists: Mapping[str, Collection[str]]
) -> tuple[bool, bool, str]:
    """(passes, non_numeric, detail) of one condition on one row."""
    if condition.labels is not None:
        label = int(row["label"])
        return label in condition.labels, False, f"label {label} not in {sorted(condition.labels)}"
    if condition.target_ids_file is not None:
        target_id = str(row["target_id"])
        listed = target_id in id_lists[condition.name]
        where = "not listed" if condition.keep_listed else "listed"
        return listed == condition.keep_listed, False, f"target_id {target_id!r} {where} in {condition.target_ids_file}"
    raw = row.get(condition.column)
    test = _OPS[condition.op]
    if is_numeric_test(condition):
        number = to_number(raw)
        if number is None:
            return False, True, f"{condition.column}={raw!r} is not a number (test {condition.op} {condition.value})"
        passes = test(number, float(condition.value))
    else:
        passes = test("" if raw is None else str(raw).strip(), condition.value)
    return passes, False, f"{condition.column}={raw!r} fails {condition.op} {condition.value!r}"


def evaluate(
    conditions: Sequence[FilterCondition],
    row: Mapping[str, Any],
    id_lists: Mapping[str, Collection[str]] | None = None,
) -> Verdict:
    """Evaluates every condition on one example's ``row`` (its data-table row with ``label`` and ``target_id``).

    ``id_lists`` maps a ``target_ids_file`` condition's name to its ids (see ``parse_id_list``).
    """
    id_lists = id_lists or {}
    first: tuple[str, str] | None = None
    failed = []
    for condition in conditions:
        passes, non_numeric, detail = _check_one(condition, row, id_lists)
        if passes:
            continue
        failed.append(condition.name)
        if first is None:
            first = (reason_of(condition, non_numeric), detail)
    if first is None:
        return Verdict(kept=True)
    return Verdict(kept=False, reason=first[0], detail=first[1], failed=tuple(failed))


def validate_conditions(conditions: Sequence[FilterCondition], columns: Collection[str], where: str) -> None:
    """Raises ConfigError naming the condition when a column test names a column absent from ``columns``."""
    if not conditions:
        raise ConfigError("filter.conditions is empty: a filter needs at least one condition")
    for condition in conditions:
        if condition.column is not None and condition.column not in columns:
            raise ConfigError(
                f"filter condition '{condition.name}': column '{condition.column}' is not in the data tables of "
                f"{where} (columns: {', '.join(sorted(columns))})"
            )


def check_numeric_column(condition: FilterCondition, values: Sequence[Any], where: str) -> None:
    """Raises ConfigError when most sample values of a numeric test's column are not numbers.

    ``values`` are the column's values from the first rows of a data table; empty ones are ignored, so a column
    that is merely sparse (e.g. ``m1`` is empty for noise-only examples) passes and is handled per row. "Most"
    (not "all") because an id column of hex strings can contain a value such as ``1234567e89`` by chance.
    """
    if not is_numeric_test(condition):
        return
    present = [v for v in values[:_SAMPLE_VALUES] if str(v).strip()]
    numeric = sum(to_number(v) is not None for v in present)
    if present and numeric * 2 < len(present):
        raise ConfigError(
            f"filter condition '{condition.name}': column '{condition.column}' in {where} is not numeric "
            f"(e.g. {present[0]!r}) but the test '{condition.op} {condition.value}' compares numbers"
        )
