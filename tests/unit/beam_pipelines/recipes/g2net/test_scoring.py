"""The matched-filter baseline as a Beam stage (``ScoreSamples`` with TestPipeline) and its CLI with bad inputs."""

from __future__ import annotations

import csv
import json
import math
import shutil

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.recipes.g2net import scoring
from transforms.recipes.g2net import matched_filter as mf

CFG = mf.MatchedFilterConfig()


def test_score_samples_maps_files_to_the_numpy_scores_and_rejects_bad_ones(g2net_raw, tmp_path):
    samples, rejects = scoring.list_samples(str(g2net_raw))
    assert not rejects and len(samples) == 48
    samples = samples[:6]
    bad_path = tmp_path / "bad.npy"
    bad_path.write_bytes(b"not a npy file")
    bad = scoring.RawSample("badbadbad0", str(bad_path), 1, math.nan)
    psd = mf.design_psds(CFG)
    bank = mf.bank_from_params([(30.0, 20.0, 0.0, 0.0), (15.0, 12.0, 0.2, 0.0)], CFG)
    search = mf.MatchedFilter(bank, psd, CFG)
    expected = [(s.uid, s.label, search.score(scoring.load_strain(s, CFG)).snr) for s in samples]

    with TestPipeline(runner=FnApiRunner()) as pipeline:
        out = pipeline | beam.Create([*samples, bad]) | scoring.ScoreSamples(bank, psd, CFG)
        scored = out.scored | "Key" >> beam.Map(lambda r: (r["id"], r["label"], round(r["score"], 9)))
        assert_that(scored, equal_to([(u, label, round(v, 9)) for u, label, v in expected]), label="scores")
        reasons = out[scoring.REJECTED_TAG] | "Reason" >> beam.Map(lambda r: (r.uid, r.reason))
        assert_that(reasons, equal_to([("badbadbad0", "unreadable_npy")]), label="rejects")


# ------------------------------------------------------------------------------------------------ CLI


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_cli_scores_every_good_file_and_reports_bad_ones(g2net_raw, tmp_path, caplog):
    from beam_pipelines.commands.cli import main

    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    labels = _rows(raw / "training_labels.csv")
    broken, dropped = labels[0]["id"], labels[1]["id"]
    (next(raw.glob(f"train/**/{broken}.npy"))).write_bytes(b"not a npy file")
    next(raw.glob(f"train/**/{dropped}.npy")).unlink()
    out = tmp_path / "scores"
    argv = ["baseline", "matched-filter", "--data", str(raw), "--out", str(out), "--templates", "12", "--seed", "1"]
    with caplog.at_level("ERROR"):
        assert main(argv) == 0
    assert any(broken in r.getMessage() and "unreadable_npy" in r.getMessage() for r in caplog.records)

    scores = _rows(out / "scores.csv")
    assert len(scores) == 46 and {broken, dropped}.isdisjoint(r["id"] for r in scores)
    assert list(scores[0]) == ["id", "label", "score", "snr", "m1", "m2", "spin1z", "spin2z", "tc"]
    truth = {r["id"]: r for r in _rows(raw / "injections.csv")}
    for row in scores:
        assert row["label"] == truth[row["id"]]["target"]
        assert float(row["snr"]) == pytest.approx(float(truth[row["id"]]["snr"]))
        assert float(row["score"]) > 0
    rejected = {r["id"]: r["reason"] for r in _rows(out / "rejected.csv")}
    assert rejected == {broken: "unreadable_npy", dropped: "label_without_file"}

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["scored"] == 46 and metrics["counts"]["rejected"] == 2
    assert metrics["counts"]["seen"] == 48 and metrics["bank"]["n_templates"] == 12
    assert 0.5 < metrics["roc_auc"] <= 1.0
    fap = metrics["efficiency_at_fap"]["0.01"]
    assert fap["resolution_limited"] is True and fap["false_alarms"] == 0  # ~23 noise samples: FAP < 1/n
    assert sum(b["n_positive"] for b in fap["efficiency_vs_snr"]["bins"]) == metrics["counts"]["positives"]
    assert (out / "efficiency_vs_snr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # An existing output is refused without --overwrite (exit code 2); the estimated PSD also runs.
    assert main(argv) == 2
    assert main([*argv, "--psd", "estimated", "--overwrite"]) == 0
    estimated = json.loads((out / "metrics.json").read_text())
    assert estimated["psd"] == {"mode": "estimated", "noise_samples": metrics["counts"]["negatives"]}


def test_the_baseline_reports_progress_with_a_rate_and_an_eta(g2net_raw, tmp_path, monkeypatch, caplog):
    """A long scoring run says how far it is, like the stages do (every SIGFORGE_PROGRESS_S seconds)."""
    from beam_pipelines.commands.cli import main

    monkeypatch.setenv("SIGFORGE_PROGRESS_S", "0.2")
    out = tmp_path / "scores"
    argv = ["baseline", "matched-filter", "--data", str(g2net_raw), "--out", str(out), "--templates", "40"]
    with caplog.at_level("INFO"):
        assert main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "sigforge.progress"]
    assert lines and all(line.startswith("matched filter: ") for line in lines)
    assert any("/s" in line and ("ETA" in line or "all 48 read" in line) for line in lines)
