"""Deterministic, leakage-free split assignment (no Beam): sha256 of the group key into fraction buckets, k-fold
cross-validation folds and their iterations, and the temporal split (docs/splits.md).

Like TFX ExampleGen's hash buckets, and unlike Python's ``hash()`` (salted per process), sha256 gives the same
split for a target on every runner, worker and machine. All examples of a target share its split (or fold).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "val", "test")
_BUCKETS = 10_000


def bucket_of(key: str, salt: str = "", buckets: int = _BUCKETS) -> int:
    """The bucket in ``[0, buckets)`` of ``key``: the first 8 bytes of sha256(salt + ":" + key), big-endian."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def assign_split(target_id: str, fractions: Mapping[str, float], salt: str = "") -> str:
    """The split of ``target_id``: cumulative fractions, in SPLITS order, over ``_BUCKETS`` hash buckets."""
    bucket = bucket_of(target_id, salt)
    upper = 0.0
    for split in SPLITS:
        upper += fractions.get(split, 0.0)
        if bucket < round(upper * _BUCKETS):
            return split
    return SPLITS[-1] if fractions.get(SPLITS[-1], 0.0) > 0 else max(fractions, key=fractions.get)


# ---- split.mode and its keys (SplitConfig) ----------------------------------------------------------------------
MODE_KEYS = {"kfold": ("k", "stratify", "cv_val"), "temporal": ("time_column", "cuts")}


def own_mode_keys(dumped: dict[str, Any], mode: str) -> dict[str, Any]:
    """A dumped SplitConfig without the other modes' keys (at their defaults, as ``mode_problem`` requires) and
    without ``mode: hash``: a hash split's resolved config, and so its manifest and ``config_sha256``, is what it
    was before the split had modes."""
    drop = {key for other, keys in MODE_KEYS.items() if other != mode for key in keys}
    return {key: v for key, v in dumped.items() if key not in drop and (key != "mode" or v != "hash")}


def mode_problem(split: Any, fields: Mapping[str, Any]) -> str | None:
    """Why a SplitConfig ``split`` (``fields``: its pydantic fields) is inconsistent with its mode, or None: another
    mode's key set to other than its default, too few folds, a temporal split without a time column or with cuts
    that are not two ascending times."""
    values = {key: getattr(split, key) for key in fields}
    defaults = {key: field.default for key, field in fields.items()}
    mode = values["mode"]
    for other, keys in MODE_KEYS.items():
        stray = [key for key in keys if other != mode and values[key] != defaults[key]]
        if stray:
            return f"{', '.join(stray)}: only for mode: {other} (mode is {mode})"
    if mode == "kfold" and values["cv_val"] == "next" and values["k"] < 3:
        return f"k = {values['k']} leaves no train fold with cv_val: next (test and val take one each)"
    if mode == "temporal" and not values["time_column"]:
        return "mode: temporal needs time_column (a numeric data-table column, e.g. midtime)"
    cuts = values["cuts"]
    if mode == "temporal" and cuts is not None and (len(cuts) != 2 or cuts[0] > cuts[1]):
        return f"cuts must be two ascending times [val_from, test_from], got {cuts}"
    return None


# ---- k-fold cross-validation (split.mode: kfold) ----------------------------------------------------------------
CV_RULES = {
    "next": {"test": "i", "val": "(i+1) % k", "train": "rest"},
    "none": {"test": "i", "val": "none", "train": "rest"},
}


def assign_fold(target_id: str, k: int, salt: str = "") -> int:
    """The fold of ``target_id`` without stratification: sha256(salt + ":" + target_id) mod ``k``, a pure function
    of the target (its fold never changes when targets are added)."""
    return bucket_of(target_id, salt, k)


def target_label(labels: Iterable[int]) -> int:
    """A target's label for stratification: the max of its examples' labels (binary labels: any positive)."""
    return max(int(label) for label in labels)


def kfold_assignment(
    target_labels: Mapping[str, int], k: int, salt: str = "", stratify: bool = False
) -> dict[str, int]:
    """target -> fold in ``[0, k)`` for every target of ``target_labels`` (target -> its ``target_label``).

    Without ``stratify``: ``assign_fold``. With it: targets ordered by (label, sha256(salt:target), target) and
    dealt round-robin, the count running on from one label to the next, so every fold holds the same number of
    targets of each label up to one (and of all labels up to one); a target's fold then depends on the other
    targets of the data set."""
    if not stratify:
        return {target: assign_fold(target, k, salt) for target in target_labels}
    order = sorted(target_labels, key=lambda t: (target_labels[t], _digest(t, salt), t))
    return {target: position % k for position, target in enumerate(order)}


def _digest(key: str, salt: str) -> bytes:
    return hashlib.sha256(f"{salt}:{key}".encode()).digest()


def cv_iterations(k: int, cv_val: str = "next") -> list[dict[str, Any]]:
    """Every iteration's folds by ``CV_RULES[cv_val]``: test = fold i, val = fold (i+1) mod k (``next``) or none,
    train = the rest; ``[{"iteration": i, "train": [...], "val": [...], "test": [i]}, ...]``."""
    if cv_val not in CV_RULES:
        raise ValueError(f"cv_val must be one of {sorted(CV_RULES)}, got {cv_val!r}")
    iterations = []
    for i in range(k):
        val = [(i + 1) % k] if cv_val == "next" else []
        train = [j for j in range(k) if j != i and j not in val]
        iterations.append({"iteration": i, "train": train, "val": val, "test": [i]})
    return iterations


def fold_roles(iteration: Mapping[str, Any]) -> dict[int, str]:
    """fold -> the split it plays in ``iteration`` (one of ``cv_iterations``)."""
    return {fold: split for split in SPLITS for fold in iteration[split]}


# ---- temporal split (split.mode: temporal) ----------------------------------------------------------------------
@dataclass(frozen=True)
class TemporalPlan:
    """Where every target goes in a temporal split.

    ``splits``: target -> split; ``starts``: split -> the time from which it starts (a cut, or in fractions mode
    the key of its first target; None for an empty split without a cut); ``straddling``: the targets whose
    examples lie on both sides of the start of the split after their own (min < start <= max), sorted."""

    splits: dict[str, str]
    starts: dict[str, float | None]
    straddling: list[str]


def temporal_assignment(
    ranges: Mapping[str, tuple[float, float]],
    fractions: Mapping[str, float] | None = None,
    cuts: Sequence[float] | None = None,
) -> TemporalPlan:
    """Assigns targets by time: ``ranges`` maps each target to (min, max) of its examples' times; a target's key is
    its min (its earliest example), so a target is never trained on with later data than it is tested on.

    With ``cuts = [val_from, test_from]``: key < val_from -> train, key < test_from -> val, else test. Otherwise
    the targets in (key, target) order go to train, val and test by ``fractions`` of their number (rounded
    cumulative counts)."""
    order = sorted(ranges, key=lambda t: (ranges[t][0], t))
    splits: dict[str, str] = {}
    if cuts is not None:
        val_from, test_from = cuts
        for target in order:
            key = ranges[target][0]
            splits[target] = "train" if key < val_from else "val" if key < test_from else "test"
        starts: dict[str, float | None] = {"train": None, "val": float(val_from), "test": float(test_from)}
    else:
        fractions = fractions or {}
        n = len(order)
        ends = {}
        upper = 0.0
        for split in SPLITS:
            upper += fractions.get(split, 0.0)
            ends[split] = n if split == SPLITS[-1] else min(n, round(upper * n))
        begin = 0
        starts = {}
        for split in SPLITS:
            members = order[begin : ends[split]]
            splits.update(dict.fromkeys(members, split))
            starts[split] = ranges[members[0]][0] if members else None
            begin = max(begin, ends[split])
        starts["train"] = None
    straddling = []
    for target in order:
        low, high = ranges[target]
        later = SPLITS[SPLITS.index(splits[target]) + 1 :]
        start = next((starts[s] for s in later if starts[s] is not None), None)
        if start is not None and low < start <= high:
            straddling.append(target)
    return TemporalPlan(splits, starts, sorted(straddling))


def temporal_order_problems(keys: Mapping[str, Sequence[float]]) -> list[str]:
    """The order a temporal split must hold, from each split's target keys (split -> keys): every key of a split
    <= every key of a later split."""
    problems = []
    present = [(split, keys[split]) for split in SPLITS if keys.get(split)]
    for (earlier, before), (later, after) in zip(present, present[1:], strict=False):
        if max(before) > min(after):
            problems.append(
                f"time order: the latest {earlier} target starts at {max(before)!r}, after the earliest {later} "
                f"target ({min(after)!r})"
            )
    return problems
