"""CNN vs baseline comparison of `python -m model.evaluate --baseline`, and the fixed-FAP helpers behind it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from model import detection  # noqa: E402
from model import evaluate as evaluate_module  # noqa: E402
from model import metrics as M  # noqa: E402
from model import train as train_module  # noqa: E402
from model.synthetic import write_fake_dataset  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from tests.support.run_artifacts import read_scores_csv  # noqa: E402

TINY = [
    "train.epochs=1",
    "model.filters=[4, 4, 8, 8]",
    "model.kernel_sizes=[16, 16, 8, 8]",
    "model.dense_units=[8, 4]",
    "data.batch_size=32",
    "data.eval_batch_size=32",
    "train.verbose=0",
    "evaluation.snr_bins=3",
    "data.injection.enabled=false",  # the fake dataset has no G2Net statistics to whiten a bank with
]


# ------------------------------------------------------------------------------------------------ helpers


def test_fap_threshold_by_hand():
    noise = np.arange(1.0, 101.0)  # 100 noise scores 1..100
    entry = detection.fap_threshold(noise, 0.05)  # 5 false alarms allowed: 96..100
    assert 95.0 < entry["threshold"] <= 96.0 and entry["false_alarms"] == 5 and entry["achieved_fap"] == 0.05
    assert entry["resolution_limited"] is False
    strict = detection.fap_threshold(noise, 1e-3)  # fewer than one allowed: above the loudest noise
    assert strict["threshold"] > 100.0 and strict["false_alarms"] == 0 and strict["resolution_limited"] is True
    tied = detection.fap_threshold([5.0, 5.0, 5.0, 1.0], 0.5)  # 2 allowed, but 3 tie at the top
    assert tied["threshold"] > 5.0 and tied["false_alarms"] == 0
    with pytest.raises(ValueError, match="false-alarm"):
        detection.fap_threshold(noise, 0.0)


def test_efficiency_at_fap_and_sensitivity_ratio():
    labels = np.r_[np.zeros(100, int), np.ones(6, int)]
    snr = np.r_[np.zeros(100), [5.0, 6.0, 7.0, 15.0, 16.0, 17.0]]
    search_a = np.r_[np.arange(100.0), [10.0, 20.0, 99.5, 200.0, 300.0, 400.0]]
    search_b = np.r_[np.arange(100.0), [10.0, 20.0, 30.0, 40.0, 50.0, 500.0]]
    edges = [4.0, 10.0, 20.0]
    a = detection.efficiency_at_fap(labels, search_a, snr, (0.01,), edges)["0.01"]
    b = detection.efficiency_at_fap(labels, search_b, snr, (0.01,), edges)["0.01"]
    # 1 false alarm allowed among noise 0..99: threshold just above 98.
    assert 98.0 < a["threshold"] <= 99.0 and a["efficiency"] == pytest.approx(4 / 6)
    assert [row["efficiency"] for row in a["efficiency_vs_snr"]["bins"]] == pytest.approx([1 / 3, 1.0])
    assert [row["efficiency"] for row in b["efficiency_vs_snr"]["bins"]] == pytest.approx([0.0, 1 / 3])
    ratio = detection.sensitivity_ratio({"0.01": a}, {"0.01": b})["0.01"]
    assert ratio["overall"] == pytest.approx((4 / 6) / (1 / 6))
    assert math.isnan(ratio["bins"][0]["ratio"]) and ratio["bins"][1]["ratio"] == pytest.approx(3.0)
    other_bins = detection.efficiency_at_fap(labels, search_b, snr, (0.01,), [4.0, 12.0, 20.0])
    with pytest.raises(ValueError, match="bins"):
        detection.sensitivity_ratio({"0.01": a}, other_bins)


def test_snr_at_50pct_efficiency_by_hand():
    # Three SNR bins with 4 positives each: medians 5, 10, 15; detected 0/4, 1/4, 3/4 above the 10 % threshold.
    labels = np.r_[np.zeros(10, int), np.ones(12, int)]
    snr = np.r_[np.zeros(10), [4.0, 5.0, 5.0, 6.0, 9.0, 10.0, 10.0, 11.0, 14.0, 15.0, 15.0, 16.0]]
    noise = np.arange(10.0)  # FAP 0.1: one false alarm allowed, threshold just above 8
    positives = np.r_[[0.0, 1.0, 2.0, 3.0], [0.5, 1.5, 2.5, 50.0], [0.0, 60.0, 70.0, 80.0]]
    entry = detection.efficiency_at_fap(labels, np.r_[noise, positives], snr, (0.1,), [3.0, 7.0, 12.0, 17.0])["0.1"]
    assert 8.0 < entry["threshold"] <= 9.0 and entry["efficiency"] == pytest.approx(4 / 12)
    assert [b["efficiency"] for b in entry["efficiency_vs_snr"]["bins"]] == pytest.approx([0.0, 0.25, 0.75])
    # 50 % lies halfway between (10, 0.25) and (15, 0.75): SNR 12.5.
    assert entry["snr_at_50pct"] == pytest.approx(12.5)
    better = dict(entry, snr_at_50pct=10.0)
    ratio = detection.sensitivity_ratio({"0.1": better}, {"0.1": entry})["0.1"]
    assert ratio["snr_at_50pct"] == [10.0, 12.5] and ratio["snr_at_50pct_ratio"] == pytest.approx(0.8)
    # No crossing inside the measured range: NaN (never reached, or already reached in the first bin).
    assert math.isnan(detection.snr_at_efficiency([{"snr_median": 5.0, "efficiency": 0.1, "n_positive": 3}]))
    first = [
        {"snr_median": 5.0, "efficiency": 0.6, "n_positive": 3},
        {"snr_median": 9.0, "efficiency": 1.0, "n_positive": 3},
    ]
    assert math.isnan(detection.snr_at_efficiency(first))
    assert detection.DEFAULT_FAPS == (0.1, 0.01, 0.001)


# ------------------------------------------------------------------------------------------------ evaluate


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    data = write_fake_dataset(str(tmp_path_factory.mktemp("baseline_data")), seed=3)
    run_dir = train_module.train(
        data, str(REPO / "run_configs" / "train_g2net.yaml"), str(tmp_path_factory.mktemp("runs")), overrides=TINY
    )
    return Path(data), Path(run_dir)


def _test_table(data: Path) -> dict[str, dict[str, str]]:
    rows = {}
    for path in sorted((data / "norm" / "test").glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows.update({row["uid"]: row for row in csv.DictReader(handle)})
    return rows


def _write_baseline(path: Path, rows: dict[str, dict[str, str]], drop: int, seed: int = 0) -> dict[str, float]:
    """A fake matched-filter scores.csv: loud for high-SNR positives; the first ``drop`` uids left out, one extra."""
    rng = np.random.default_rng(seed)
    scores = {}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "score", "snr", "m1"])
        for uid in sorted(rows)[drop:]:
            snr = float(rows[uid]["snr"] or 0.0)
            scores[uid] = float(5.0 + 0.3 * snr + rng.normal(0.0, 0.5))
            writer.writerow([uid, rows[uid]["label"], f"{scores[uid]:.9g}", rows[uid]["snr"], "30.0"])
        writer.writerow(["not-in-split", "0", "99.0", "", "30.0"])
    return scores


def test_evaluate_compares_cnn_and_baseline_on_the_same_uids(tiny_run, tmp_path, caplog):
    data, run = tiny_run
    table = _test_table(data)
    assert len(table) == 32
    baseline_csv = tmp_path / "scores.csv"
    base_scores = _write_baseline(baseline_csv, table, drop=3)
    out = tmp_path / "eval"
    argv = ["--data", str(data), "--run", str(run), "--out", str(out), "--baseline", str(baseline_csv)]
    with caplog.at_level("WARNING"):
        assert evaluate_module.main(argv) == 0
    assert any("3 of 32 test uid(s) have no baseline score" in r.getMessage() for r in caplog.records)

    payload = json.loads((out / f"{run.name}_eval_test_metrics.json").read_text())
    assert payload["reproduces_saved"] is True  # the existing re-evaluation is unchanged
    entry = payload["baseline"]
    assert (entry["n_split"], entry["n_compared"], entry["n_missing_baseline"]) == (32, 29, 3)
    assert entry["missing_examples"] == sorted(table)[:3] and entry["n_label_mismatches"] == 0

    # Both AUCs on exactly the compared uids.
    uids, labels, cnn = read_scores_csv(str(out / "scores_test.csv"))
    keep = [i for i, uid in enumerate(uids) if uid in base_scores]
    base = np.array([base_scores[uids[i]] for i in keep])
    assert entry["cnn"]["roc_auc"] == pytest.approx(M.roc_auc(labels[keep], cnn[keep]), abs=1e-9)
    assert entry["baseline"]["roc_auc"] == pytest.approx(M.roc_auc(labels[keep], base), abs=1e-9)
    assert entry["baseline"]["roc_auc"] > 0.9  # the fake baseline is informative

    # Same SNR bins for both searches; ratio = CNN efficiency / baseline efficiency per bin.
    for key in ("0.01", "0.001"):
        cnn_bins = entry["cnn"]["efficiency_at_fap"][key]["efficiency_vs_snr"]["bins"]
        base_entry = entry["baseline"]["efficiency_at_fap"][key]
        base_bins = base_entry["efficiency_vs_snr"]["bins"]
        assert len(cnn_bins) == 3 and [b["snr_low"] for b in cnn_bins] == [b["snr_low"] for b in base_bins]
        assert sum(b["n_positive"] for b in base_bins) == int(labels[keep].sum())
        # Few noise examples: no false alarm allowed, the threshold sits just above the loudest noise score.
        noise_max = max(base_scores[uids[i]] for i in keep if labels[i] == 0)
        assert base_entry["resolution_limited"] is True and noise_max < base_entry["threshold"] < noise_max + 1e-6
        for row, c, b in zip(entry["sensitivity_ratio"][key]["bins"], cnn_bins, base_bins, strict=True):
            assert row["numerator"] == c["efficiency"] and row["denominator"] == b["efficiency"]
            if b["efficiency"]:
                assert row["ratio"] == pytest.approx(c["efficiency"] / b["efficiency"])
            else:
                assert row["ratio"] is None
    for name in ("roc_vs_baseline", "efficiency_vs_baseline"):
        png = out / "plots" / f"{run.name}_eval_test_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_a_baseline_without_common_uids_or_columns(tiny_run, tmp_path):
    data, run = tiny_run
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("id,label,score\nsomething-else,1,3.0\n")
    argv = ["--data", str(data), "--run", str(run), "--out", str(tmp_path / "e")]
    assert evaluate_module.main([*argv, "--baseline", str(foreign)]) == 2
    no_score = tmp_path / "no_score.csv"
    no_score.write_text("id,label\ntest-00000,0\n")
    assert evaluate_module.main([*argv, "--baseline", str(no_score)]) == 2
    assert evaluate_module.main([*argv, "--baseline", str(tmp_path / "missing.csv")]) == 2
