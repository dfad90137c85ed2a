"""`sigforge baseline matched-filter --background/--glitch-background`: the background folders are scored with the
foreground's bank and PSD, the low-FAP search metrics use the background's thresholds (and refuse the FAPs it
cannot resolve), and glitchy noise gets its false-alarm rates at the clean thresholds."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from beam_pipelines.recipes.g2net.baseline import run_matched_filter
from transforms.evaluation import fap
from transforms.recipes.g2net import sample as gw_sample
from transforms.recipes.g2net.glitches import GlitchSpec


def _scores(path) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mf_bg")
    gw_sample.write_g2net_sample(str(root / "fg"), n=16, seed=31, snr_range=(12.0, 20.0))
    gw_sample.write_g2net_sample(str(root / "bg"), n=120, seed=32, positive_fraction=0.0)
    loud = GlitchSpec(rate=1.0, snr_range=(40.0, 60.0), kinds=("sine_gaussian",))
    gw_sample.write_g2net_sample(str(root / "gl"), n=20, seed=33, positive_fraction=0.0, glitches=loud)
    return root


def test_background_and_glitch_scores_and_search_metrics(folders, tmp_path):
    out = tmp_path / "mf"
    payload = run_matched_filter(
        str(folders / "fg"),
        str(out),
        n_templates=12,
        seed=1,
        background=str(folders / "bg"),
        glitch_background=str(folders / "gl"),
        search_faps=(0.1, 0.01),
    )
    background = _scores(out / "background_scores.csv")
    glitchy = _scores(out / "glitch_background_scores.csv")
    assert len(background) == 120 and len(glitchy) == 20
    search = json.loads((out / "metrics.json").read_text())["search"]
    assert search["background"]["n_noise"] == 120 and payload["search"]["n_noise"] == 120
    resolved, refused = search["faps"]["0.1"], search["faps"]["0.01"]
    assert resolved["resolvable"] and resolved["false_alarms"] == 12
    assert sum(s >= resolved["threshold"] for s in background.values()) == 12
    foreground = _scores(out / "scores.csv")
    with open(folders / "fg" / "training_labels.csv", newline="") as handle:
        positives = [row["id"] for row in csv.DictReader(handle) if row["target"] == "1"]
    detected = sum(foreground[uid] >= resolved["threshold"] for uid in positives)
    assert resolved["n_detected"] == detected and resolved["n_positive"] == len(positives) == 8
    assert resolved["efficiency_interval"] == pytest.approx(list(fap.binomial_interval(detected, 8)))
    assert resolved["sensitive_volume"]["n_injections"] == 8  # distances from injections.csv
    assert refused["resolvable"] is False and refused["min_resolvable_fap"] == pytest.approx(10 / 120)
    # SNR 40-60 sine-Gaussians in single detectors: loud for a matched filter without signal-consistency tests.
    glitches = json.loads((out / "metrics.json").read_text())["glitches"]
    assert glitches["0.1"]["n_other"] == 20
    assert glitches["0.1"]["other"] == pytest.approx(np.mean([s >= resolved["threshold"] for s in glitchy.values()]))
