"""Split skew: does a numeric data-table column follow the same distribution in train as in val / test?

For every numeric column (``data.numeric_columns``) train is compared with each other split by the two-sample
Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``). A comparison is *flagged* when both hold:

- the KS statistic D (the largest gap between the two empirical CDFs, 0..1) exceeds ``threshold``: the effect is
  large enough to matter (TFDV-style distance threshold, default 0.2);
- its p-value is below ``alpha`` divided by the number of comparisons (Bonferroni): the gap is not chance, even
  though many columns are tested (default alpha 0.01).

A split assigned by sha256(target_id) is a random partition, so a clean dataset is not flagged; a split that
depends on a column (e.g. all high-SNR examples in test) is, and so may a temporal split (time-dependent columns).
The folds of a k-fold split are compared each with the other folds pooled (``compare_folds``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.2
DEFAULT_ALPHA = 0.01
MIN_VALUES = 5  # fewer values in either split: the comparison is reported but never flagged


@dataclass(frozen=True)
class SkewResult:
    """One comparison: ``column`` in train vs ``split``."""

    column: str
    split: str
    n_train: int
    n_other: int
    statistic: float
    pvalue: float
    flagged: bool
    reference: str = "train"  # what ``split`` is compared with (k folds: "other folds", n_train its size)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.column}: {self.reference} vs {self.split} KS D={self.statistic:.3f} p={self.pvalue:.2g} "
            f"(n={self.n_train}/{self.n_other})"
        )


def compare_splits(
    columns: dict[str, dict[str, np.ndarray]],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    reference: str = "train",
) -> list[SkewResult]:
    """Train vs every other split for each column of ``columns`` (column -> split -> values)."""
    pairs = [
        (name, split)
        for name, per_split in columns.items()
        if reference in per_split
        for split in per_split
        if split != reference
    ]
    from scipy import stats  # ~1 s to import: only when skew is computed, not at every CLI start

    corrected = alpha / max(1, len(pairs))
    results = []
    for name, split in pairs:
        train, other = columns[name][reference], columns[name][split]
        if train.size == 0 or other.size == 0:
            continue
        test = stats.ks_2samp(train, other)
        statistic, pvalue = float(test.statistic), float(test.pvalue)
        enough = min(train.size, other.size) >= MIN_VALUES
        flagged = enough and statistic > threshold and pvalue < corrected
        results.append(SkewResult(name, split, int(train.size), int(other.size), statistic, pvalue, flagged))
    return results


OTHER_FOLDS = "other folds"


def compare_folds(
    columns: dict[str, dict[str, np.ndarray]], threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
) -> list[SkewResult]:
    """Every fold vs the other folds pooled, for each column of ``columns`` (column -> fold -> values): the test
    fold of each cross-validation iteration against the folds it trains and validates on."""
    from scipy import stats

    pairs = [(name, fold) for name, per_fold in columns.items() for fold in per_fold if len(per_fold) > 1]
    corrected = alpha / max(1, len(pairs))
    results = []
    for name, fold in pairs:
        values = columns[name][fold]
        rest = np.concatenate([v for f, v in columns[name].items() if f != fold])
        if values.size == 0 or rest.size == 0:
            continue
        test = stats.ks_2samp(rest, values)
        statistic, pvalue = float(test.statistic), float(test.pvalue)
        enough = min(rest.size, values.size) >= MIN_VALUES
        flagged = enough and statistic > threshold and pvalue < corrected
        results.append(
            SkewResult(name, fold, int(rest.size), int(values.size), statistic, pvalue, flagged, OTHER_FOLDS)
        )
    return results


def compare_any(
    columns: dict[str, dict[str, np.ndarray]], threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
) -> list[SkewResult]:
    """``compare_splits`` for train / val / test, ``compare_folds`` for the folds of a k-fold split."""
    if any("train" in per_split for per_split in columns.values()) or not columns:
        return compare_splits(columns, threshold, alpha)
    return compare_folds(columns, threshold, alpha)


def flagged(results: list[SkewResult]) -> list[SkewResult]:
    return [result for result in results if result.flagged]


def dataset_skew(out: str, fs, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> list[SkewResult]:
    """Every comparison of the split stage's data tables of dataset ``out`` (``fs``: a ``ReportFiles``)."""
    from transforms.report.data import numeric_columns, split_tables

    return compare_any(numeric_columns(split_tables(fs, out), per_target=True), threshold, alpha)
