"""The TCE bad-input corpus (tests/support/corpus_tce.py) through one `sigforge build` and `sigforge audit`."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from beam_pipelines.commands import cli
from beam_pipelines.io.rejects import INTERNAL_ERROR
from tests.support.corpus_tce import add_tce_corpus
from transforms.recipes.tce import sample as tce_sample


def _csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def corpus_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus_tce")
    raw = base / "raw"
    tce_sample.write_tce_sample(str(raw), n_targets=2, seed=3, quarters=1, days_per_quarter=20.0)
    clean_rows = _csv(raw / "tces.csv")
    files, rows, uids = add_tce_corpus(raw, clean_rows)
    out = base / "ds"
    code = cli.main(["build", "--config", "run_configs/tce_kepler.yaml", "--input", str(raw), "--output", str(out)])
    return {"code": code, "out": out, "files": files, "rows": rows, "uids": uids}


def test_build_is_not_aborted(corpus_build):
    assert corpus_build["code"] == 0


def test_every_bad_file_and_row_has_its_reason(corpus_build):
    rejected = _csv(corpus_build["out"] / "rejected" / "build.csv")
    wrong = {}
    for name, reason in corpus_build["files"].items():
        got = [r["reason"] for r in rejected if r["uid_or_path"].endswith(name)]
        if got != [reason]:
            wrong[name] = (reason, got)
    for prefix, reason in corpus_build["rows"].items():
        got = [r["reason"] for r in rejected if r["uid_or_path"].startswith(f"tce_csv:{prefix}")]
        if got != [reason]:
            wrong[prefix] = (reason, got)
    for uid, reason in corpus_build["uids"].items():
        got = [r["reason"] for r in rejected if r["uid_or_path"] == uid]
        if got != [reason]:
            wrong[uid] = (reason, got)
    assert wrong == {}
    assert not [r for r in rejected if r["reason"] == INTERNAL_ERROR]


def test_nothing_is_lost_and_audit_is_clean(corpus_build):
    out = corpus_build["out"]
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    assert build["written"] > 0
    assert build["seen"] == build["written"] + build["rejected"]
    reasons = Counter(r["reason"] for r in _csv(out / "rejected" / "build.csv"))
    assert dict(reasons) == build["rejected_by_reason"]
    assert cli.main(["audit", str(out)]) == 0


def test_empty_disposition_is_never_label_zero(corpus_build):
    rows = _csv(corpus_build["out"] / "tfrecords" / "data_tbl_0001-0001.csv")
    assert not [r for r in rows if r["disposition"].strip() == ""]


# ---- the audit's independent recount of the raw inputs: tampering with the counts adjusted is found ------------


def _tamper(src, dest, drop_example, drop_rejection):
    """A copy of the built dataset without the examples and rejection rows the predicates pick, with seen,
    written, rejected and rejected_by_reason adjusted, so that every count and file still agrees."""
    import shutil

    from tests.support.dataset_fixture import read_records, read_table, write_records, write_table
    from transforms.contract import example_keys

    shutil.copytree(src, dest)
    table = next((dest / "tfrecords").glob("data_tbl_*.csv"))
    columns, rows = read_table(table)
    gone = {row["uid"] for row in rows if drop_example(row)}
    write_table(table, columns, [row for row in rows if row["uid"] not in gone])
    shard = dest / "tfrecords" / rows[0]["shard"]
    write_records(shard, [r for r in read_records(shard) if example_keys(r)[0] not in gone])
    rejected = _csv(dest / "rejected" / "build.csv")
    kept = [row for row in rejected if not drop_rejection(row)]
    with open(dest / "rejected" / "build.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rejected[0]))
        writer.writeheader()
        writer.writerows(kept)
    data = json.loads((dest / "manifest.json").read_text())
    build = data["stages"]["build"]
    build["written"] -= len(gone)
    build["rejected"] = len(kept)
    build["rejected_by_reason"] = dict(Counter(r["reason"] for r in kept))
    build["seen"] = build["written"] + build["rejected"]
    (dest / "manifest.json").write_text(json.dumps(data))
    return len(gone), len(rejected) - len(kept)


def _problems(out):
    from transforms import audit

    return audit.audit_dataset(str(out))


def test_recount_is_clean_on_the_corpus(corpus_build):
    assert _problems(corpus_build["out"]) == []


def test_a_tce_removed_with_the_counts_adjusted_is_found(corpus_build, tmp_path):
    rows = _csv(next((corpus_build["out"] / "tfrecords").glob("data_tbl_*.csv")))
    victim = sorted({row["tce_uid"] for row in rows})[0]
    gone, _ = _tamper(
        corpus_build["out"], tmp_path / "ds", lambda row: row["tce_uid"] == victim,
        lambda row: row["uid_or_path"].startswith(f"{victim}_"),  # its dropped transits too
    )  # fmt: skip
    assert gone > 0
    problems = _problems(tmp_path / "ds")
    assert len(problems) == 1 and f"TCE {victim}" in problems[0], problems


def test_a_star_removed_with_the_counts_adjusted_is_found(corpus_build, tmp_path):
    rows = _csv(next((corpus_build["out"] / "tfrecords").glob("data_tbl_*.csv")))
    star = sorted({row["target_id"] for row in rows})[-1]
    gone, dropped = _tamper(
        corpus_build["out"], tmp_path / "ds", lambda row: row["target_id"] == star,
        lambda row: row["uid_or_path"].startswith(f"{star}-"),
    )  # fmt: skip
    assert gone > 0
    problems = _problems(tmp_path / "ds")
    assert len(problems) == 1 and f"TCE {star}-" in problems[0], problems


def test_a_removed_light_curve_rejection_is_found(corpus_build, tmp_path):
    name = "kplr006000002-negflux_llc.fits"
    _, dropped = _tamper(corpus_build["out"], tmp_path / "ds", lambda row: False,
                         lambda row: row["uid_or_path"].endswith(name))  # fmt: skip
    assert dropped == 1
    problems = _problems(tmp_path / "ds")
    assert len(problems) == 1 and name in problems[0], problems


def test_a_removed_tce_row_rejection_is_found(corpus_build, tmp_path):
    _, dropped = _tamper(corpus_build["out"], tmp_path / "ds", lambda row: False,
                         lambda row: row["reason"] == "bad_period" and ",nan," in row["uid_or_path"])  # fmt: skip
    assert dropped == 1
    problems = _problems(tmp_path / "ds")
    assert len(problems) == 1 and "TCE-table row 'tce_csv:" in problems[0], problems


def test_a_removed_duplicate_tce_rejection_is_found(corpus_build, tmp_path):
    _, dropped = _tamper(corpus_build["out"], tmp_path / "ds", lambda row: False,
                         lambda row: row["reason"] == "duplicate_tce")  # fmt: skip
    assert dropped == 1
    problems = _problems(tmp_path / "ds")
    assert len(problems) == 1 and "rejected as duplicate_tce" in problems[0], problems
