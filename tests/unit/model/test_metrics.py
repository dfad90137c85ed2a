"""model.metrics against hand-computed values and a brute-force Mann-Whitney oracle (numpy only, no TF)."""

import math

import numpy as np
import pytest

from model import metrics as M


def test_auc_perfect_reversed_and_constant():
    y = [0, 0, 0, 1, 1]
    assert M.roc_auc(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == 1.0
    assert M.roc_auc(y, [0.9, 0.8, 0.7, 0.2, 0.1]) == 0.0
    assert M.roc_auc(y, [0.5] * 5) == 0.5


def test_auc_hand_example_with_ties():
    # Pairs (pos, neg): 0.5 vs 0.5 tie -> 1/2, 0.5 vs 0.2 -> 1, 0.9 vs both -> 2: (0.5 + 1 + 2) / 4.
    assert M.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)


def test_roc_curve_and_average_precision_hand_example():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    fpr, tpr, thresholds = M.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert M.roc_auc(y, s) == pytest.approx(0.75)
    # Ranked: 1 (P=1, R=.5), 0, 1 (P=2/3, R=1), 0 -> AP = 0.5 * 1 + 0.5 * 2/3.
    assert M.average_precision(y, s) == pytest.approx(0.5 + 1 / 3)
    precision, recall, _ = M.precision_recall_curve(y, s)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1, 1])


def test_average_precision_all_tied_is_prevalence():
    assert M.average_precision([0, 1, 0, 0], [0.3] * 4) == pytest.approx(0.25)


def test_auc_matches_mann_whitney_oracle_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + 0.8 * y, 1)  # rounding creates many ties
    pos, neg = s[y == 1], s[y == 0]
    oracle = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (pos.size * neg.size)
    assert M.roc_auc(y, s) == pytest.approx(oracle, abs=1e-12)


def test_undefined_metrics_are_nan_and_jsonable_maps_them_to_none():
    assert math.isnan(M.roc_auc([1, 1], [0.2, 0.4]))
    assert math.isnan(M.average_precision([0, 0], [0.2, 0.4]))
    assert M.jsonable({"a": math.nan, "b": [np.float32(1.5), np.inf], "c": np.arange(2)}) == {
        "a": None,
        "b": [1.5, None],
        "c": [0, 1],
    }


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="0 or 1"):
        M.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="differ in length"):
        M.roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        M.roc_auc([0, 1], [0.1, np.nan])


def test_confusion_matrix_and_binary_metrics_hand_example():
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.6, 0.3, 0.7, 0.4, 0.9]
    np.testing.assert_array_equal(M.confusion_matrix(y, np.array(s) >= 0.5), [[2, 1], [1, 2]])
    m = M.binary_metrics(y, s, threshold=0.5)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert (m["n_examples"], m["n_positive"], m["n_negative"]) == (6, 3, 3)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.7, 0.4, 0.9])))
    # A threshold at the score itself predicts it positive (score >= threshold).
    assert M.binary_metrics(y, s, threshold=0.9)["confusion_matrix"] == [[3, 0], [2, 1]]


def test_choose_threshold_max_f1_youden_fixed():
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.6, 0.3, 0.7, 0.4, 0.9]
    # F1 per threshold (desc): 0.9: 2/4, 0.7: 4/5, 0.6: 4/6, 0.4: 6/7, 0.3: 6/8, 0.1: 6/9 -> 0.4.
    assert M.choose_threshold(y, s, "max_f1") == pytest.approx(0.4)
    # TPR - FPR: 0.9: 1/3, 0.7: 2/3, 0.6: 1/3, 0.4: 2/3, 0.3: 1/3, 0.1: 0 -> first maximum, 0.7.
    assert M.choose_threshold(y, s, "youden") == pytest.approx(0.7)
    assert M.choose_threshold(y, s, "fixed", fixed=0.25) == 0.25
    assert M.choose_threshold([0, 0], [0.1, 0.2], "max_f1", fixed=0.5) == 0.5
    with pytest.raises(ValueError, match="unknown threshold"):
        M.choose_threshold(y, s, "best")


def test_efficiency_vs_snr_explicit_bins():
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.6, 0.2, 0.7, 0.8, 0.9, 0.95]
    snr = [0, 0, 0, 0, 4, 6, 12, 15, math.nan]
    out = M.efficiency_vs_snr(labels, scores, snr, threshold=0.5, bins=[0, 10, 20])
    assert out["false_alarm_rate"] == pytest.approx(0.25)
    assert (out["n_positive_with_snr"], out["n_positive_without_snr"], out["n_positive_outside_bins"]) == (4, 1, 0)
    low, high = out["bins"]
    assert (low["n_positive"], low["efficiency"]) == (2, 0.5)
    # Low bin: 0.2 beats 1 of 4 noise scores with a tie -> (0.5 + 1) / 4; 0.7 beats all 4.
    assert low["roc_auc"] == pytest.approx((1.5 + 4) / 8)
    assert (high["n_positive"], high["efficiency"], high["roc_auc"]) == (2, 1.0, 1.0)
    assert low["snr_median"] == 5.0


def test_equal_count_snr_bins():
    edges = M.snr_bin_edges(np.arange(1.0, 13.0), 3)
    np.testing.assert_allclose(edges, [1, 4.666666666, 8.333333333, 12], rtol=1e-6)
    out = M.efficiency_vs_snr([1] * 12 + [0], [0.9] * 13, list(range(1, 13)) + [0], 0.5, bins=3)
    assert [b["n_positive"] for b in out["bins"]] == [4, 4, 4]
