"""transforms/evaluation/crossval.py: the t confidence interval against scipy and a hand computation, the k-fold
iteration plan check and the out-of-fold exactly-once check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transforms.evaluation.crossval import CoverageError, check_iterations, check_oof_coverage, overlaps, summarize
from transforms.evaluation.crossval import t_interval as interval


@pytest.mark.parametrize("values", [[0.81, 0.77, 0.9], [0.5, 0.6, 0.7, 0.65, 0.55], [1.0, 3.0]])
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_interval_equals_scipy(values, level):
    result = interval(values, level)
    sem = stats.sem(values)  # sd (ddof=1) / sqrt(n)
    low, high = stats.t.interval(level, len(values) - 1, loc=np.mean(values), scale=sem)
    assert result["n"] == len(values) and result["n_undefined"] == 0
    assert result["mean"] == pytest.approx(np.mean(values), abs=1e-15)
    assert result["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert result["ci_low"] == pytest.approx(low, rel=1e-12)
    assert result["ci_high"] == pytest.approx(high, rel=1e-12)


def test_interval_by_hand():
    """k = 3: t_{0.975, 2} = 4.30265272974946 (tables); values 0.7, 0.8, 0.9 have sd 0.1."""
    result = interval([0.7, 0.8, 0.9])
    assert result["t"] == pytest.approx(4.30265272974946, rel=1e-12)
    assert result["sd"] == pytest.approx(0.1, rel=1e-12)
    half = 4.30265272974946 * 0.1 / math.sqrt(3)
    assert result["half_width"] == pytest.approx(half, rel=1e-12)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.8 - half, 0.8 + half), rel=1e-12)


def test_undefined_values_are_left_out_and_counted():
    result = interval([0.7, None, math.nan, 0.9])
    assert result["n"] == 2 and result["n_undefined"] == 2
    assert result["mean"] == pytest.approx(0.8)
    one = interval([0.7, None])
    assert one["mean"] == 0.7 and math.isnan(one["sd"]) and math.isnan(one["ci_low"])
    assert math.isnan(interval([None])["mean"])
    with pytest.raises(ValueError):
        interval([1.0, 2.0], level=1.0)


def test_summarize_per_metric():
    rows = [{"roc_auc": 0.8, "f1": 0.5}, {"roc_auc": 0.9, "f1": None}, {"roc_auc": 0.7}]
    summary = summarize(rows, ["roc_auc", "f1"])
    assert summary["roc_auc"]["mean"] == pytest.approx(0.8)
    assert summary["f1"]["n"] == 1 and summary["f1"]["n_undefined"] == 2


def _plan(k):
    return [
        {"iteration": i, "train": [f for f in range(k) if f not in (i, (i + 1) % k)], "val": [(i + 1) % k], "test": [i]}
        for i in range(k)
    ]


def test_sound_iteration_plans_pass():
    for k in (3, 5):
        assert check_iterations(k, _plan(k)) == []


def test_broken_iteration_plans_are_named():
    plan = _plan(3)
    plan[2] = {**plan[2], "test": [0]}  # fold 0 tested twice, fold 2 never
    problems = check_iterations(3, plan)
    assert any("[2] are the test fold of no iteration" in p for p in problems)
    assert any("[0] are the test fold of more than one" in p for p in problems)
    overlap = _plan(3)
    overlap[0] = {**overlap[0], "train": [2, 0]}
    assert any("in more than one of train/val/test" in p for p in check_iterations(3, overlap))
    assert any("numbered" in p for p in check_iterations(3, [{**p, "iteration": 7} for p in _plan(3)]))
    assert any("not in [0, 3)" in p for p in check_iterations(3, [{**_plan(3)[0], "val": [5]}, *_plan(3)[1:]]))
    assert check_iterations(1, []) != []


def test_oof_coverage_exactly_once():
    check_oof_coverage(["a", "b", "c"], {0: ["a"], 1: ["b", "c"]})
    with pytest.raises(CoverageError) as info:
        check_oof_coverage(["a", "b", "c", "d"], {0: ["a", "b"], 1: ["b", "x"]})
    problems = info.value.problems
    assert any("scored more than once: b (iterations [0, 1])" in p for p in problems)
    assert any("never scored" in p and "'c'" in p and "'d'" in p for p in problems)
    assert any("not in the dataset: ['x']" in p for p in problems)
    with pytest.raises(CoverageError):
        check_oof_coverage(["a"], {0: ["a", "a"]})


def test_overlaps():
    assert overlaps({"train": ["t1", "t2"], "val": ["t3"], "test": ["t2", "t1", "t1"]}) == {
        "t1": ["test", "train"],
        "t2": ["test", "train"],
    }
