"""Glitches in the G2Net generator: each glitch is in the detector, at the time, frequency and SNR its truth row
says (the residual strain minus the sample's own noise, measured numerically against the model PSD), glitches
are drawn independently per detector, and turning them on changes nothing else in a sample."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy.signal import hilbert

from beam_pipelines.commands import cli
from transforms.recipes.g2net import glitches as gl
from transforms.recipes.g2net import psd_models
from transforms.recipes.g2net import sample as gw_sample

FS, N, SEED = 2048.0, 4096, 21


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _inner(a: np.ndarray, b: np.ndarray, psd: np.ndarray, f_low: float = 20.0) -> float:
    """<a, b> = 4 df Re sum A B* / S over f >= f_low, written out here (independent of noise.inner_product)."""
    freqs = np.fft.rfftfreq(N, 1.0 / FS)
    keep = freqs >= f_low
    fa, fb = np.fft.rfft(a)[keep] / FS, np.fft.rfft(b)[keep] / FS
    return float(4.0 * (FS / N) * np.sum((fa * fb.conj()).real / psd[keep]))


@pytest.fixture(scope="module")
def glitchy(tmp_path_factory):
    """12 samples, half with signals, every detector glitching with probability 0.5."""
    out = tmp_path_factory.mktemp("glitchy")
    spec = gl.GlitchSpec(rate=0.5, snr_range=(8.0, 25.0))
    summary = gw_sample.write_g2net_sample(str(out), n=12, seed=SEED, glitches=spec)
    return out, summary


def test_glitch_truth_matches_the_strain(glitchy):
    """Residual = strain - noise - injected signal: zero in glitch-free detectors, and in the others a burst whose
    optimal SNR, envelope peak time, and spectral peak are the truth's; its matched SNR in the data is the truth
    SNR up to the noise's unit-variance fluctuation."""
    out, summary = glitchy
    truth = _rows(out / "glitches.csv")
    assert summary["glitches"] == len(truth) > 0
    assert set(truth[0]) == set(gl.GLITCH_COLUMNS)
    by_id: dict[str, list[dict[str, str]]] = {}
    for row in truth:
        by_id.setdefault(row["id"], []).append(row)
    psd = np.array(psd_models.network_psd(("H1", "L1", "V1"), N, FS))
    spec = gw_sample.DEFAULT_SPEC
    matched_errors = []
    for plan in gw_sample.plan_samples(12, SEED):
        strain = np.load(gw_sample.sample_path(str(out), plan.id))
        clean, _ = gw_sample.make_sample(plan, SEED, spec)
        residual = strain - clean
        rows = {row["detector"]: row for row in by_id.get(plan.id, [])}
        for channel, detector in enumerate(("H1", "L1", "V1")):
            if detector not in rows:
                assert np.all(residual[channel] == 0.0)
                continue
            row = rows[detector]
            snr, t0, f0, q = (float(row[k]) for k in ("snr", "time", "frequency_hz", "q"))
            assert math.sqrt(_inner(residual[channel], residual[channel], psd[channel])) == pytest.approx(snr, rel=1e-6)
            envelope = np.abs(hilbert(residual[channel]))
            assert np.argmax(envelope) / FS == pytest.approx(t0, abs=1.5 / FS + 0.1 / f0)
            spectrum = np.abs(np.fft.rfft(residual[channel]))
            peak = np.fft.rfftfreq(N, 1.0 / FS)[np.argmax(spectrum)]
            assert peak == pytest.approx(f0, rel=0.25 if q < 5 else 0.05, abs=1.0)
            template = gl.sine_gaussian(t0, f0, q, float(row["phase"]))
            matched = _inner(
                strain[channel] - (clean[channel] - gw_sample.make_noise(SEED, plan.index)[channel]),
                template,
                psd[channel],
            ) / math.sqrt(_inner(template, template, psd[channel]))
            matched_errors.append(matched - snr)
    errors = np.array(matched_errors)
    assert np.all(np.abs(errors) < 4.0)  # noise contributes N(0, 1)
    assert abs(errors.mean()) < 4.0 / math.sqrt(errors.size)


def test_glitches_change_nothing_else(glitchy, tmp_path):
    out, _ = glitchy
    plain = tmp_path / "plain"
    gw_sample.write_g2net_sample(str(plain), n=12, seed=SEED)
    assert (plain / "injections.csv").read_text() == (out / "injections.csv").read_text()
    assert not (plain / "glitches.csv").exists()
    glitch_ids = {row["id"] for row in _rows(out / "glitches.csv")}
    for plan in gw_sample.plan_samples(12, SEED):
        a = np.load(gw_sample.sample_path(str(plain), plan.id))
        b = np.load(gw_sample.sample_path(str(out), plan.id))
        assert np.array_equal(a, b) == (plan.id not in glitch_ids)


def test_glitches_are_independent_per_detector():
    spec = gl.GlitchSpec(rate=0.3, kinds=("blip",))
    draws = [gl.draw_glitches(np.random.default_rng(i), spec) for i in range(4000)]
    hits = np.array([[any(g.detector == d for g in drawn) for d in ("H1", "L1", "V1")] for drawn in draws])
    assert hits.mean(axis=0) == pytest.approx([0.3] * 3, abs=0.03)
    assert np.mean(hits[:, 0] & hits[:, 1]) == pytest.approx(0.09, abs=0.02)
    blips = [g for drawn in draws for g in drawn]
    assert {g.kind for g in blips} == {"blip"}
    assert all(2.0 <= g.q <= 5.0 and 30.0 <= g.frequency_hz <= 250.0 for g in blips)


def test_glitch_spec_refuses_bad_settings():
    for bad in ({"rate": 1.5}, {"kinds": ("koi_fish",)}, {"kinds": ()}, {"snr_range": (5.0, 1.0)}):
        with pytest.raises(ValueError):
            gl.GlitchSpec(**bad)


def test_make_sample_cli_writes_a_glitchy_noise_only_background(tmp_path):
    out = tmp_path / "bg"
    argv = ["make-sample", "g2net", str(out), "--n", "6", "--seed", "2", "--noise-only", "--glitch-rate", "1"]
    assert cli.main([*argv, "--glitch-snr", "10", "12", "--glitch-kinds", "blip"]) == 0
    labels = _rows(out / "training_labels.csv")
    assert len(labels) == 6 and {row["target"] for row in labels} == {"0"}
    truth = _rows(out / "glitches.csv")
    assert len(truth) == 18 and {row["kind"] for row in truth} == {"blip"}
    assert all(10.0 <= float(row["snr"]) <= 12.0 for row in truth)
