"""CSVs meant for people are spreadsheet-safe; the data tables that code reads keep their exact values.

A cell a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, OWASP's list, and is not a plain number such as ``-1.5``) is written with a single quote in front; a cell
that starts with a quote gets one more, so the code that reads these CSVs back (the audit's recount,
``evaluate --baseline``) strips exactly one quote and gets the value back. See docs/rejections.md.
"""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from beam_pipelines.commands import cli

G2NET = "run_configs/g2net.yaml"
FORMULAS = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(1)", "=cmd|' /C calc'!A0"]
NUMBER = "-1.5"
QUOTED = "'quoted"


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _cells(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def _assert_safe(cells):
    """No cell a spreadsheet would run: none starts with = + - @ tab CR, but for plain numbers."""
    number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
    bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number.fullmatch(c)]
    assert not bad, bad


@pytest.fixture(scope="module")
def formula_build(g2net_raw, tmp_path_factory):
    """A build whose labels CSV lists ids that look like formulas (no file: rejected with the id) and a written
    sample whose ``source_id`` is a formula (kept exactly in its data table)."""
    root = tmp_path_factory.mktemp("cells")
    raw = root / "raw"
    shutil.copytree(g2net_raw, raw)
    labels = raw / "training_labels.csv"
    rows = _rows(labels)
    rows[0]["source_id"] = FORMULAS[0]
    for uid in [*FORMULAS, NUMBER, QUOTED]:
        rows.append({"id": uid, "target": "0", "source_id": "x"})
    with open(labels, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "target", "source_id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    out = root / "ds"
    assert cli.main(["build", "--config", G2NET, "--input", str(raw), "--output", str(out)]) == 0
    return raw, out, rows[0]["id"]


def test_rejected_csv_cells_are_neutralised(formula_build):
    _, out, _ = formula_build
    cells = _cells(out / "rejected" / "build.csv")
    _assert_safe(cells)
    named = {row["uid_or_path"] for row in _rows(out / "rejected" / "build.csv")}
    assert {"'" + f for f in FORMULAS} | {NUMBER, "''quoted"} <= named


def test_audit_reads_the_neutralised_rejections_back(formula_build):
    """The audit's recount finds every label row's id among the rejections: it strips the quote again."""
    from transforms.audit import audit_dataset

    _, out, _ = formula_build
    assert audit_dataset(str(out)) == []
    assert cli.main(["audit", str(out)]) == 0


def test_data_tables_keep_exact_values(formula_build):
    _, out, first = formula_build
    rows = [row for path in sorted((out / "tfrecords").glob("data_tbl_*.csv")) for row in _rows(path)]
    assert {row["uid"]: row["source_id"] for row in rows}[first] == FORMULAS[0]


def test_build_manifest_counts_are_unchanged(formula_build):
    _, out, _ = formula_build
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    assert build["rejected_by_reason"] == {"label_without_file": len(FORMULAS) + 2}


def test_baseline_scores_and_rejected_csv_are_neutralised_and_read_back(g2net_raw, tmp_path):
    """The baseline's scores.csv (a scored sample whose id is a formula) and rejected.csv (a label row without a
    file); ``evaluate --baseline`` reads the scores back under the original id."""
    from model.evaluate import read_baseline_scores

    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    rows = _rows(raw / "training_labels.csv")
    old = rows[0]["id"]
    evil = "=1+2"
    rows[0]["id"] = evil
    npy = next(raw.glob(f"train/**/{old}.npy"))
    npy.rename(npy.parent / f"{evil}.npy")
    rows.append({"id": "@rejected", "target": "1", "source_id": "x"})
    with open(raw / "training_labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "target", "source_id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (raw / "injections.csv").unlink()
    out = tmp_path / "scores"
    argv = ["baseline", "matched-filter", "--data", str(raw), "--out", str(out), "--templates", "4", "--seed", "1"]
    assert cli.main(argv) == 0
    _assert_safe(_cells(out / "scores.csv"))
    _assert_safe(_cells(out / "rejected.csv"))
    assert "'" + evil in {row["id"] for row in _rows(out / "scores.csv")}
    assert {row["id"] for row in _rows(out / "rejected.csv")} == {"'@rejected"}
    scores = read_baseline_scores(str(out / "scores.csv"))
    assert evil in scores.score and "'" + evil not in scores.score


def test_trainer_scores_csv_is_neutralised_and_read_back(tmp_path):
    from model.artifacts import write_scores_csv
    from model.evaluate import read_baseline_scores

    path = tmp_path / "scores_test.csv"
    uids = [*FORMULAS, "plain", QUOTED]
    write_scores_csv(str(path), uids, [0] * len(uids), [-1.5, 0.25, 1e-30, -2.0, 3.0, 0.5, 0.0])
    _assert_safe(_cells(path))
    assert [row["score"] for row in _rows(path)][:2] == ["-1.5", "0.25"]  # numbers stay numbers
    assert sorted(read_baseline_scores(str(path)).score) == sorted(uids)


def test_predict_csv_is_neutralised():
    from model.predict import Prediction, format_csv

    rows = [
        Prediction(FORMULAS[0], "/data/=x.npy", score=0.5),
        Prediction("@id", "-path.npy", error="=unreadable: +detail"),
        Prediction("ok", "/data/ok.npy", score=-1.5),
    ]
    text = format_csv(rows)
    cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
    _assert_safe(cells)
    parsed = list(csv.DictReader(text.splitlines()))
    assert parsed[0]["id"] == "'" + FORMULAS[0] and parsed[2]["score"] == "-1.5"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1", "'=1"),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("-1e-5", "-1e-5"),
        ("-inf", "'-inf"),
        ("'a", "''a"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_cell_rule(value, written):
    from transforms.csv_cells import restore_cell, safe_cell

    assert safe_cell(value) == written
    assert restore_cell(written) == value
