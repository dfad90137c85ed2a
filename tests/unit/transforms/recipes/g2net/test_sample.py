"""Tests of the G2Net sample generator: source draws at the target SNR, sample plan, file layout and truth table."""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import replace

import numpy as np
import pytest

from transforms.recipes.g2net import noise as gw_noise
from transforms.recipes.g2net import priors, psd_models, waveform
from transforms.recipes.g2net import sample as gw_sample

FS = 2048.0
N = 4096


def _read_csv(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _direct_snr(h: np.ndarray, psd: np.ndarray, f_low: float = 20.0) -> np.ndarray:
    """Optimal SNR per row from the definition, independent of gw_noise.inner_product."""
    freqs = np.arange(N // 2 + 1) * FS / N
    spectrum = np.fft.rfft(h, axis=-1) / FS
    keep = freqs >= f_low
    return np.sqrt(4.0 * (FS / N) * np.sum(np.abs(spectrum[:, keep]) ** 2 / psd[:, keep], axis=-1))


def _design_psds() -> np.ndarray:
    return np.array(psd_models.network_psd(("H1", "L1", "V1"), N, FS))


def _pycbc_sigma(h: np.ndarray, psd: np.ndarray, f_low: float = 20.0) -> np.ndarray:
    """Per-detector optimal SNR from ``pycbc.filter.sigma`` (the oracle)."""
    from pycbc.filter import sigma
    from pycbc.types import FrequencySeries, TimeSeries

    return np.array(
        [
            sigma(TimeSeries(row, delta_t=1.0 / FS), FrequencySeries(p, delta_f=FS / N), low_frequency_cutoff=f_low)
            for row, p in zip(h, psd, strict=True)
        ]
    )


# ------------------------------------------------------------------------------------------------ SNR


def test_draw_source_hits_its_target_snr():
    spec = priors.SampleSpec(snr_range=(8.0, 8.0))
    params, snrs = gw_sample.draw_source(np.random.default_rng(2), spec)
    h = waveform.render_injection(params)
    direct = _direct_snr(h, _design_psds())
    np.testing.assert_allclose(direct, snrs, rtol=1e-10)
    assert math.sqrt(np.sum(direct**2)) == pytest.approx(8.0, rel=1e-10)
    # PyCBC's sigma (single-precision internals) agrees with the generator's SNR.
    np.testing.assert_allclose(_pycbc_sigma(h, _design_psds()), snrs, rtol=1e-6)
    assert 10.0 <= params.m2 <= params.m1 <= 50.0
    assert params.approximant == "IMRPhenomD" and params.spin1x == params.spin2y == 0.0
    assert abs(params.spin1z) <= 0.5 and abs(params.spin2z) <= 0.5


def test_precessing_and_distance_priors():
    spec = priors.SampleSpec(approximant="IMRPhenomXPHM", spin_mode="precessing", spin_max=0.8, snr_range=None)
    params, snrs = gw_sample.draw_source(np.random.default_rng(5), spec)
    assert params.approximant == "IMRPhenomXPHM" and 100.0 <= params.distance_mpc <= 2000.0
    assert math.hypot(params.spin1x, params.spin1y, params.spin1z) <= 0.8 and params.spin1x != 0.0
    h = waveform.render_injection(params)
    np.testing.assert_allclose(_pycbc_sigma(h, _design_psds()), snrs, rtol=1e-6)
    # SNR scales as 1 / distance: the same source twice as far has half the SNR.
    far = waveform.render_injection(replace(params, distance_mpc=2 * params.distance_mpc))
    np.testing.assert_allclose(_direct_snr(far, _design_psds()), snrs / 2, rtol=1e-9)
    with pytest.raises(ValueError, match="spin_mode"):
        priors.SampleSpec(spin_mode="random")
    with pytest.raises(ValueError, match="psd_model"):
        priors.SampleSpec(psd_model="o5")


def test_matched_filter_recovers_injected_snr():
    rng = np.random.default_rng(99)
    params, snrs = gw_sample.draw_source(rng, priors.SampleSpec(snr_range=(10.0, 10.0)))
    h = waveform.render_injection(params)
    psd = _design_psds()
    hh = float(np.sum(gw_noise.inner_product(h, h, psd)))
    stats = np.array(
        [np.sum(gw_noise.inner_product(gw_noise.network_noise(rng) + h, h, psd)) / math.sqrt(hh) for _ in range(400)]
    )
    assert math.sqrt(hh) == pytest.approx(10.0, rel=1e-10)
    # Unit-variance Gaussian around the SNR for noise with the design PSD (a little more: the 2-s crop leaks
    # sub-20-Hz power upwards, ~+7 % in std).
    assert abs(stats.mean() - 10.0) < 4 * stats.std() / math.sqrt(stats.size), stats.mean()
    assert 0.9 < stats.std() < 1.25, stats.std()


# ------------------------------------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def grouped_sample(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("g2net"))
    summary = gw_sample.write_g2net_sample(out, n=40, seed=17, signals_per_source=3)
    return out, summary


def test_layout_matches_kaggle(grouped_sample):
    out, summary = grouped_sample
    header, labels = _read_csv(os.path.join(out, "training_labels.csv"))
    assert header == ["id", "target", "source_id"]
    assert len(labels) == 40 == summary["n"]
    ids = [row["id"] for row in labels]
    assert len(set(ids)) == 40 and all(re.fullmatch(r"[0-9a-f]{10}", i) for i in ids)
    assert sum(int(row["target"]) for row in labels) == 20 == summary["positives"]
    for sample_id in ids:
        path = os.path.join(out, "train", sample_id[0], sample_id[1], sample_id[2], f"{sample_id}.npy")
        strain = np.load(path)
        assert strain.dtype == np.float64 and strain.shape == (3, 4096)
        assert 1e-22 < strain.std() < 5e-21
    npys = [f for _, _, files in os.walk(os.path.join(out, "train")) for f in files]
    assert len(npys) == 40 and all(f.endswith(".npy") for f in npys)


def test_truth_table_and_groups(grouped_sample):
    out, summary = grouped_sample
    header, rows = _read_csv(os.path.join(out, "injections.csv"))
    assert header == list(gw_sample.INJECTION_COLUMNS)
    _, labels = _read_csv(os.path.join(out, "training_labels.csv"))
    assert [(r["id"], r["target"], r["source_id"]) for r in rows] == [
        (r["id"], r["target"], r["source_id"]) for r in labels
    ]
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["source_id"], []).append(row)
    positive_groups = [g for g in groups.values() if g[0]["target"] == "1"]
    assert sorted(len(g) for g in positive_groups) == [2] + [3] * 6  # 20 positives dealt 3 per source
    assert summary["sources"] == 7
    psd = _design_psds()
    for index, row in enumerate(rows):
        if row["target"] == "0":
            assert row["source_id"] == row["id"] and float(row["snr"]) == 0.0 and row["m1"] == ""
            continue
        group = groups[row["source_id"]]
        assert all(r["target"] == "1" for r in group)
        assert row["source_id"] == group[0]["id"]  # named after its first sample
        signal = waveform.render_injection(row)
        np.testing.assert_array_equal(signal, waveform.render_injection(group[0]))
        # Optimal SNR recomputed from the rendered signal equals the truth table.
        direct = _direct_snr(signal, psd)
        np.testing.assert_allclose(direct, [float(row[c]) for c in ("snr_h1", "snr_l1", "snr_v1")], rtol=1e-9)
        assert math.sqrt(np.sum(direct**2)) == pytest.approx(float(row["snr"]), rel=1e-9)
        assert row["approximant"] == "IMRPhenomD" and float(row["chi_eff"]) == pytest.approx(
            waveform.SourceParams.from_mapping(row).chi_eff
        )
        assert 4.0 <= float(row["snr"]) <= 20.0 and 1.2 <= float(row["tc"]) <= 1.8
        # The file is this sample's noise plus exactly the rendered signal.
        sid = row["id"]
        strain = np.load(os.path.join(out, "train", sid[0], sid[1], sid[2], f"{sid}.npy"))
        np.testing.assert_allclose(strain - gw_sample.make_noise(17, index), signal, rtol=0, atol=1e-30)


def _tree_bytes(root: str) -> dict[str, bytes]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = handle.read()
    return out


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        gw_sample.write_g2net_sample(str(tmp_path / name), n=12, seed=seed)
    a, b, c = (_tree_bytes(str(tmp_path / name)) for name in "abc")
    assert len(a) == 12 + 2 and a == b
    assert a["training_labels.csv"] != c["training_labels.csv"]
    assert not (set(a) & set(c)) - {"training_labels.csv", "injections.csv"}


def test_refuses_to_overwrite_without_flag(tmp_path):
    gw_sample.write_g2net_sample(str(tmp_path), n=4, seed=1)
    with pytest.raises(FileExistsError):
        gw_sample.write_g2net_sample(str(tmp_path), n=4, seed=2)
    gw_sample.write_g2net_sample(str(tmp_path), n=4, seed=2, overwrite=True)
    npys = [f for _, _, files in os.walk(tmp_path / "train") for f in files]
    assert len(npys) == 4


def test_plan_is_parallel_safe_and_balanced():
    plans = gw_sample.plan_samples(1001, seed=3, signals_per_source=1, positive_fraction=0.5)
    assert sum(p.target for p in plans) == 500
    assert all(p.source_id == p.id for p in plans)
    # Sample noise depends only on (seed, index): drawing it out of order changes nothing.
    np.testing.assert_array_equal(gw_sample.make_noise(3, 7), gw_sample.make_noise(3, 7))
    assert not np.array_equal(gw_sample.make_noise(3, 7), gw_sample.make_noise(3, 8))


def test_cli_priors_reach_the_generator(tmp_path):
    from beam_pipelines.commands.cli import main

    argv = ["make-sample", "g2net", str(tmp_path / "x"), "--n", "6", "--seed", "2"]
    priors = ["--prior", "approximant=IMRPhenomXPHM", "--prior", "spin_mode=precessing", "--prior", "snr_range=[9, 9]"]
    assert main([*argv, *priors]) == 0
    _, rows = _read_csv(str(tmp_path / "x" / "injections.csv"))
    positives = [r for r in rows if r["target"] == "1"]
    assert positives and all(r["approximant"] == "IMRPhenomXPHM" for r in positives)
    assert all(float(r["snr"]) == pytest.approx(9.0) and float(r["spin1x"]) != 0.0 for r in positives)
    assert main(["make-sample", "g2net", str(tmp_path / "y"), "--prior", "mass_rnge=[5, 9]"]) == 2
    assert main(["make-sample", "tce", str(tmp_path / "z"), "--prior", "spin_max=0.1"]) == 2
