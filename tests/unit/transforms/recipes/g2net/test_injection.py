"""Train-time injection: normalize(n + h) = normalize(n) + L(h) on generated data, the bank's unit SNR against
``pycbc.filter.sigma``, and the trainer's TF injection against the normal path."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.recipes.g2net import injection, psd_models, signal, strain
from transforms.recipes.g2net import sample as gw_sample
from transforms.recipes.g2net.preprocessing import StrainParams, normalize_reference
from transforms.recipes.g2net.waveform import render_injection

FS = 2048.0
N = 4096
PARAMS = StrainParams()
SEED = 3


def _build(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The build stage's per-example path: validation, bandpass, float32 cast (``strain.preprocess_arrays``)."""
    out = strain.preprocess_arrays(arrays, 3, N, FS, PARAMS.band, 8, (1e-24, 1e-17), 0.25)
    assert all(isinstance(x, np.ndarray) for x in out), out
    return out


@pytest.fixture(scope="module")
def dataset_stats() -> dict[str, np.ndarray]:
    """Train statistics as the analyze stage computes them, from 8 generated noise-only examples."""
    noise = _build([gw_sample.make_noise(SEED, 100 + k) for k in range(8)])
    psd = np.mean([signal.periodogram_psd(x, FS, window=PARAMS.psd_window())[1] for x in noise], axis=0)
    windowed = [signal.apply_tukey(signal.whiten(x, psd, FS, PARAMS.band), PARAMS.tukey_alpha) for x in noise]
    moments = np.mean([signal.channel_moments(w) for w in windowed], axis=0)
    mean, std = signal.stats_from_moments(*moments)
    return {"avg_psd": psd, "channel_mean": mean, "channel_std": std}


@pytest.fixture(scope="module")
def path(dataset_stats) -> injection.LinearPath:
    section = {"sample_rate_hz": FS, "n_samples": N, "bandpass": {"low_hz": 20.0, "high_hz": 500.0, "order": 8}}
    return injection.LinearPath.from_dataset({**section, "tukey_alpha": 0.1}, dataset_stats)


def test_normalized_sum_equals_normalized_noise_plus_linear_part(dataset_stats, path):
    """The generator's own noise n and signal h: the normal path's normalize(n + h) equals normalize(n) + L(h)."""
    plan = next(p for p in gw_sample.plan_samples(20, SEED) if p.target)
    n = gw_sample.make_noise(SEED, plan.index)
    params, _ = gw_sample.make_source(SEED, plan.source_index)
    h = render_injection(params)
    sample, _ = gw_sample.make_sample(plan, SEED)
    np.testing.assert_array_equal(sample, n + h)  # the sample on disk is exactly n + h

    both, noise_only = _build([sample, n])
    normal = normalize_reference(both, dataset_stats, PARAMS)
    injected = normalize_reference(noise_only, dataset_stats, PARAMS) + injection.linear_part(h, path)
    signal_rms = np.sqrt(np.mean(injection.linear_part(h, path) ** 2))
    assert signal_rms > 0.05  # the signal is visible at this scale, so the check is not vacuous
    # Only the build's float32 cast of the bandpassed strain separates them (relative 6e-8 of the strain).
    np.testing.assert_allclose(normal, injected, rtol=0, atol=1e-5)
    assert not np.allclose(normal, normalize_reference(noise_only, dataset_stats, PARAMS), atol=1e-2)


def test_linear_part_is_linear_and_has_no_offset(path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, N)) * 1e-21
    np.testing.assert_allclose(
        injection.linear_part(2.5 * a - b, path),
        2.5 * injection.linear_part(a, path) - injection.linear_part(b, path),
        atol=1e-9,
    )
    np.testing.assert_array_equal(injection.linear_part(np.zeros((3, N)), path), 0.0)


def test_unit_snr_waveform_against_pycbc_sigma():
    """Bank entries are at network optimal SNR 1 as pycbc.filter.sigma measures it (design PSDs, f >= 20 Hz)."""
    from pycbc.filter import sigma
    from pycbc.types import FrequencySeries, TimeSeries

    spec = injection.bank_spec(
        injection.LinearPath(FS, N, (20.0, 500.0), 8, 0.1, np.ones((3, N // 2 + 1)), np.ones(3)),
        {"mass_range": [20, 40]},
    )
    assert spec.mass_range == (20, 40) and spec.snr_range is None
    psd = psd_models.network_psd(("H1", "L1", "V1"), N, FS)
    for k in range(3):
        h = injection.unit_snr_waveform(np.random.default_rng(k), spec)
        per_detector = [
            sigma(TimeSeries(row, delta_t=1 / FS), FrequencySeries(p, delta_f=FS / N), low_frequency_cutoff=20.0)
            for row, p in zip(h, psd, strict=True)
        ]
        assert np.sqrt(np.sum(np.square(per_detector))) == pytest.approx(1.0, rel=1e-5)
        # SNR rho is rho times the unit waveform: the generator's truth SNR scales the same way.
        assert np.sqrt(np.sum(np.square(per_detector) * 7.0**2)) == pytest.approx(7.0, rel=1e-5)


def test_bank_is_deterministic_and_matches_linear_part(path):
    bank = injection.waveform_bank(3, 5, path)
    assert bank.shape == (3, 3, N) and bank.dtype == np.float32
    np.testing.assert_array_equal(bank, injection.waveform_bank(3, 5, path))
    rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(7, 1)))
    expected = injection.linear_part(injection.unit_snr_waveform(rng, injection.bank_spec(path)), path)
    np.testing.assert_allclose(bank[1], expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(bank[0], bank[1])
    with pytest.raises(ValueError, match="format"):
        injection.bank_spec(path, {"fs": 4096.0})
    with pytest.raises(ValueError, match="unknown"):
        injection.bank_spec(path, {"mass_rang": [1, 2]})


def test_trainer_injection_equals_normal_path(dataset_stats, path):
    """model.injection.inject at SNR rho gives the normal path's normalization of the sample at truth SNR rho."""
    tf = pytest.importorskip("tensorflow")
    from model.injection import inject

    spec = gw_sample.DEFAULT_SPEC
    plan = next(p for p in gw_sample.plan_samples(20, SEED) if p.target)
    params, snrs = gw_sample.make_source(SEED, plan.source_index, spec)
    rho = float(np.sqrt(np.sum(snrs**2)))  # the truth table's network SNR
    h = render_injection(params)
    n = gw_sample.make_noise(SEED, plan.index)
    both, noise_only = _build([n + h, n])
    normal = normalize_reference(both, dataset_stats, PARAMS)
    bank = np.stack([np.zeros((3, N)), injection.linear_part(h / rho, path)]).astype(np.float32)
    noise_norm = normalize_reference(noise_only, dataset_stats, PARAMS).astype(np.float32)
    out = inject(
        tf.constant(np.stack([noise_norm, noise_norm])),
        tf.constant(bank),
        tf.constant([1, 1]),
        tf.constant([rho, rho], tf.float32),
        tf.constant([True, False]),
    ).numpy()
    np.testing.assert_allclose(out[0], normal, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(out[1], noise_norm)
