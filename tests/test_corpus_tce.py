"""The TCE bad-input corpus (tests/corpus_tce.py) through one `sigforge build` and `sigforge audit`."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from corpus_tce import add_tce_corpus

from beam_pipelines import cli
from beam_pipelines.rejects import INTERNAL_ERROR
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
    files, rows = add_tce_corpus(raw, clean_rows)
    out = base / "ds"
    code = cli.main(["build", "--config", "run_configs/tce_kepler.yaml", "--input", str(raw), "--output", str(out)])
    return {"code": code, "out": out, "files": files, "rows": rows}


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
