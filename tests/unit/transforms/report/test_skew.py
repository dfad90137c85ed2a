"""Split skew: the two-sample KS comparison, on arrays and on a dataset's data tables (hash split vs skewed)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import stats

from beam_pipelines.commands.report import run_skew_check
from beam_pipelines.dataset import fs
from tests.support import report_fixture
from transforms.contract import SPLIT_DIR, SPLITS
from transforms.report.data import numeric_columns, split_tables
from transforms.report.skew import compare_splits, dataset_skew
from transforms.splitting import assign_split


def test_same_distribution_is_not_flagged_and_a_shift_is():
    rng = np.random.default_rng(0)
    same = {"x": {"train": rng.normal(size=800), "val": rng.normal(size=100), "test": rng.normal(size=100)}}
    assert not any(r.flagged for r in compare_splits(same))
    shifted = {"x": {"train": rng.normal(size=800), "val": rng.normal(size=100), "test": rng.normal(1.0, size=100)}}
    results = {r.split: r for r in compare_splits(shifted)}
    assert results["test"].flagged and not results["val"].flagged
    oracle = stats.ks_2samp(shifted["x"]["train"], shifted["x"]["test"])
    assert results["test"].statistic == pytest.approx(oracle.statistic)
    assert results["test"].pvalue == pytest.approx(oracle.pvalue)


def test_threshold_alpha_and_small_samples():
    rng = np.random.default_rng(1)
    columns = {"x": {"train": rng.normal(size=500), "test": rng.normal(0.4, size=200)}}
    assert compare_splits(columns, threshold=0.1)[0].flagged
    assert not compare_splits(columns, threshold=0.5)[0].flagged  # D ~ 0.16 is below a 0.5 threshold
    assert not compare_splits(columns, threshold=0.1, alpha=1e-30)[0].flagged
    tiny = {"x": {"train": rng.normal(size=500), "test": rng.normal(5.0, size=3)}}
    assert not compare_splits(tiny)[0].flagged  # 3 values: reported, never flagged


def test_per_target_values_count_each_target_once():
    rows = [{"uid": f"u{i}", "target_id": "a" if i < 9 else "b", "label": "0", "x": str(i)} for i in range(10)]
    columns = numeric_columns({"train": rows}, per_target=True)
    assert columns["x"]["train"].tolist() == [4.0, 9.0]  # mean of 0..8, then 9
    assert numeric_columns({"train": rows})["x"]["train"].size == 10


def _write_split_tables(out, rows, split_of) -> None:
    for split in SPLITS:
        folder = out / SPLIT_DIR / split
        folder.mkdir(parents=True)
        with open(folder / "data_tbl_0001-0001.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row in rows if split_of(row) == split)


@pytest.fixture(scope="module")
def sample_rows(tmp_path_factory):
    """The data-table rows (with injection truth) of a real 48-sample G2Net build."""
    built = report_fixture.g2net(tmp_path_factory.mktemp("skew"))
    return built, [row for rows in split_tables(fs, str(built.out)).values() for row in rows]


def test_hash_split_of_a_generated_sample_is_not_flagged(sample_rows):
    built, _ = sample_rows
    results = dataset_skew(str(built.out), fs)
    assert {r.column for r in results} >= {"snr", "snr_h1", "label"}
    assert not [r.describe() for r in results if r.flagged]
    assert run_skew_check(str(built.out)) == 0
    audited = report_fixture.sigforge("audit", str(built.out), "--skew")
    assert audited.returncode == 0, audited.stderr


def test_a_split_by_snr_is_flagged(sample_rows, tmp_path):
    _, rows = sample_rows
    # 400 rows: the sample's rows repeated under new targets, so the statistics have some power
    many = [{**row, "uid": f"{row['uid']}{k}", "target_id": f"{row['target_id']}{k}"} for k in range(9) for row in rows]
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    hashed, skewed = tmp_path / "hashed", tmp_path / "skewed"
    _write_split_tables(hashed, many, lambda row: assign_split(row["target_id"], fractions, "s"))
    loud = sorted(float(row["snr"]) for row in many)[int(0.85 * len(many))]
    _write_split_tables(
        skewed,
        many,
        lambda row: (
            "test" if float(row["snr"]) >= loud else assign_split(row["target_id"], {"train": 0.9, "val": 0.1}, "s")
        ),
    )
    assert not [r for r in dataset_skew(str(hashed), fs) if r.flagged]
    flagged = {(r.column, r.split) for r in dataset_skew(str(skewed), fs) if r.flagged}
    assert ("snr", "test") in flagged and ("snr", "val") not in flagged
    assert run_skew_check(str(skewed)) == 1
