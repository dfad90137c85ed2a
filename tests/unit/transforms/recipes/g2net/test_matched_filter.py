"""Matched-filter baseline: SNR recovery, noise statistics, bank search, AUC, and the CLI with bad inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from transforms.recipes.g2net import detectors, priors, waveform
from transforms.recipes.g2net import matched_filter as mf
from transforms.recipes.g2net import noise as gw_noise
from transforms.recipes.g2net import sample as gw_sample

CFG = mf.MatchedFilterConfig()


@pytest.fixture(scope="module")
def design_psd() -> np.ndarray:
    return mf.design_psds(CFG)


@pytest.fixture(scope="module")
def bank(design_psd) -> mf.TemplateBank:
    return mf.make_bank(48, design_psd[0], CFG, seed=0, n_candidates=500)


@pytest.fixture(scope="module")
def search(bank, design_psd) -> mf.MatchedFilter:
    return mf.MatchedFilter(bank, design_psd, CFG)


def _true_bank(params: waveform.SourceParams) -> mf.TemplateBank:
    return mf.bank_from_params([(params.m1, params.m2, params.spin1z, params.spin2z)], CFG)


def _source(seed: int, network_snr: float | None = None) -> tuple[waveform.SourceParams, np.ndarray, np.ndarray]:
    """A generator source, its rendered strain (3, 4096) and per-detector optimal SNRs, optionally rescaled."""
    params, snrs = gw_sample.draw_source(np.random.default_rng(seed), priors.SampleSpec())
    if network_snr is not None:
        factor = network_snr / float(np.sqrt(np.sum(snrs**2)))
        params = replace(params, distance_mpc=params.distance_mpc / factor)
        snrs = snrs * factor
    return params, waveform.render_injection(params), snrs


# ------------------------------------------------------------------------------------------------ numerics


def test_true_template_recovers_the_injected_snr(design_psd):
    """Known template = the injected waveform: Re z at the true time is N(rho_d, 1) per detector, Im z N(0, 1)."""
    _, signal, snrs = _source(4, network_snr=12.0)
    template = (np.fft.rfft(signal, axis=-1) / CFG.fs)[None]  # (1, 3, n_freq): one template per detector
    n = 60
    z = np.stack(
        [mf.complex_snr(signal + gw_sample.make_noise(101, i), template, design_psd, CFG)[0, :, 0] for i in range(n)]
    )
    # Noise-free, the filter returns the optimal SNR but for the conditioning's taper, which touches the
    # signal's first 0.1 s (the IMR signal is cut at the window start).
    clean = mf.complex_snr(signal, template, design_psd, CFG)[0, :, 0]
    np.testing.assert_allclose(clean.real, snrs, rtol=0.03)
    np.testing.assert_allclose(clean.imag, 0.0, atol=1e-6 * snrs.max())
    for d in range(3):
        mean, std = z[:, d].real.mean(), z[:, d].real.std(ddof=1)
        assert abs(mean - snrs[d]) < 3.0 * std / math.sqrt(n), (d, mean, snrs[d], std)
        assert 0.7 < std < 1.35, (d, std)
        assert abs(z[:, d].imag.mean()) < 3.0 * z[:, d].imag.std(ddof=1) / math.sqrt(n)


def test_quadrature_is_the_sine_phase(design_psd):
    """A sine-phase signal filtered with the cosine-phase template lands in Im z: the phase is maximized."""
    params = waveform.SourceParams(25.0, 15.0, 0, 0, 0.2, 0, 0, 0.1, 0, 0, 0, 0.0, 0.0, CFG.tc_ref, 0.0, 500.0)
    hp, hc, t0 = waveform.polarizations(params, CFG.fs)  # face-on: hx is h+ shifted by 90 degrees
    hplus, hcross = (waveform.place(h, t0, CFG.tc_ref, CFG.fs, CFG.n_samples) for h in (hp, hc))
    template = mf.template_spectrum(25.0, 15.0, 0.2, 0.1, CFG)[None]
    optimal = gw_noise.optimal_snr(hcross, design_psd[0])
    z = mf.complex_snr(np.stack([hcross] * 3), template, design_psd, CFG)[0, 0, 0]
    assert abs(z) == pytest.approx(optimal, rel=0.03)
    assert abs(z.real) < 0.02 * abs(z)
    z_plus = mf.complex_snr(np.stack([hplus] * 3), template, design_psd, CFG)[0, 0, 0]
    assert z_plus.real == pytest.approx(abs(z_plus), rel=1e-4)


def test_complex_snr_equals_pycbc_matched_filter(design_psd):
    """The batched filter is PyCBC's ``matched_filter`` (same template, data, PSD and band) at every lag."""
    from pycbc.filter import matched_filter
    from pycbc.types import FrequencySeries

    params, signal, _ = _source(11, network_snr=10.0)
    strain = signal + gw_sample.make_noise(77, 0)
    template = mf.template_spectrum(params.m1, params.m2, params.spin1z, params.spin2z, CFG)
    z = mf.complex_snr(strain, template[None], design_psd, CFG)[0]
    data = np.fft.rfft(mf.condition(strain, CFG), axis=-1) / CFG.fs
    df = CFG.fs / CFG.n_samples
    for d in range(3):
        oracle = matched_filter(
            FrequencySeries(template * np.exp(2j * np.pi * CFG.freqs * CFG.tc_ref), delta_f=df),
            FrequencySeries(data[d], delta_f=df),
            psd=FrequencySeries(design_psd[d], delta_f=df),
            low_frequency_cutoff=CFG.f_low,
            high_frequency_cutoff=CFG.f_high,
        ).numpy()
        # PyCBC's lag k is a merger at k / fs, ours at tc_ref + k / fs; PyCBC correlates with conj(data) order.
        shift = int(round(CFG.tc_ref * CFG.fs))
        np.testing.assert_allclose(np.roll(oracle, -shift), z[d], rtol=0, atol=1e-4 * np.abs(z[d]).max())


def test_noise_only_is_chi_squared(design_psd):
    """Gaussian design-PSD noise: |z|^2 per detector and lag is chi2(2); the coincident sum is chi2(6).

    Without the Tukey window the longest template's V1 |z|^2 comes out ~10 % high (edge leakage)."""
    bank = mf.bank_from_params([(10.0, 10.0, 0.0, 0.0), (30.0, 20.0, 0.4, -0.2), (50.0, 45.0, -0.5, 0.5)], CFG)
    lags = mf.searched_lags(CFG) % CFG.n_samples
    n = 60
    rho2 = np.stack(
        [
            np.abs(mf.complex_snr(gw_sample.make_noise(202, i), bank.spectra, design_psd, CFG)[..., lags]) ** 2
            for i in range(n)
        ]
    )  # (realizations, 3 templates, 3 detectors, lags)
    per_realization = rho2.mean(axis=-1)
    mean = per_realization.mean(axis=0)
    error = per_realization.std(axis=0, ddof=1) / math.sqrt(n)  # lags within a realization are correlated
    assert np.all(np.abs(mean - 2.0) < 4.0 * error), (mean, error)
    assert abs(mean.mean() - 2.0) < 0.05, mean.mean()
    network = rho2.sum(axis=2)  # same lag in every detector, no maximization
    assert abs(network.mean() - 6.0) < 0.15, network.mean()
    assert network.var() == pytest.approx(12.0, rel=0.15)  # chi2(6): variance 2 * 6
    tail = float(np.mean(network > stats.chi2.ppf(0.99, 6)))
    assert 0.004 < tail < 0.02, tail


def test_estimated_psd_matches_design_and_keeps_the_noise_level(design_psd):
    psd = mf.estimate_psd((gw_sample.make_noise(303, i) for i in range(40)), CFG)
    assert psd.shape == design_psd.shape
    band = (CFG.freqs >= 20.0) & (CFG.freqs <= 500.0)
    ratio = psd[:, band] / design_psd[:, band]
    assert np.all(np.abs(ratio.mean(axis=1) - 1.0) < 0.05), ratio.mean(axis=1)
    bank = mf.bank_from_params([(30.0, 20.0, 0.0, 0.0)], CFG)
    lags = mf.searched_lags(CFG) % CFG.n_samples
    rho2 = [
        np.abs(mf.complex_snr(gw_sample.make_noise(404, i), bank.spectra, psd, CFG)[..., lags]) ** 2 for i in range(12)
    ]
    assert abs(np.mean(rho2) - 2.0) < 0.15  # 40 averaged periodograms: ~2.5 % bias of 1/S plus scatter
    with pytest.raises(ValueError, match="no noise-only"):
        mf.estimate_psd([], CFG)


def test_network_statistic_respects_light_travel_windows():
    halves = mf.coincidence_half_widths(CFG)
    assert halves[0] == 0 and halves[1] == math.ceil((0.010012 + CFG.delay_margin_s) * CFG.fs) == 22
    assert 56 <= halves[2] <= 58  # H1-V1: 27.3 ms
    lags = mf.searched_lags(CFG)
    ref = int(lags[len(lags) // 2]) % CFG.n_samples
    rho2 = np.zeros((3, 3, CFG.n_samples))
    rho2[:, 0, ref] = 10.0
    rho2[0, 1, ref + halves[1]] = 5.0  # inside L1's window: counted
    rho2[1, 1, ref + halves[1] + 1] = 5.0  # just outside: not counted at ref (but found on its own)
    rho2[2, 2, ref - halves[2]] = 7.0  # V1 at the window edge
    stat, lag, peaks = mf.network_statistic(rho2, CFG)
    np.testing.assert_allclose(stat, [15.0, 10.0, 17.0])
    assert lag.tolist() == [ref, ref, ref]
    np.testing.assert_allclose(peaks[2], [10.0, 0.0, 7.0])
    # A spike outside the searched coalescence times is ignored.
    outside = np.zeros((1, 3, CFG.n_samples))
    outside[0, 0, (int(lags[-1]) + 40) % CFG.n_samples] = 50.0
    assert mf.network_statistic(outside, CFG)[0][0] == 0.0


def test_bank_is_deterministic_nested_and_covering(design_psd):
    small = mf.make_bank(8, design_psd[0], CFG, seed=3, n_candidates=120)
    again = mf.make_bank(8, design_psd[0], CFG, seed=3, n_candidates=120)
    larger = mf.make_bank(16, design_psd[0], CFG, seed=3, n_candidates=120)
    np.testing.assert_array_equal(small.params, again.params)
    np.testing.assert_array_equal(larger.params[:8], small.params)  # farthest-point placement is greedy
    assert larger.minimal_match > small.minimal_match
    masses, spins = larger.params[:, :2], larger.params[:, 2:]
    assert np.all((masses >= 10.0) & (masses <= 50.0)) and np.all(masses[:, 0] >= masses[:, 1])
    assert np.all(np.abs(spins) <= CFG.spin_max)
    other = mf.make_bank(8, design_psd[0], CFG, seed=4, n_candidates=120)
    assert not np.array_equal(other.params, small.params)


def test_bank_search_recovers_noise_free_injections(search, bank):
    """Noise-free, the bank's network SNR is at most the optimal one and within the bank's mismatch of it
    (and the conditioning taper's ~3 %)."""
    assert 0.6 < bank.minimal_match < 1.0
    for seed in range(6):
        params, signal, snrs = _source(40 + seed)
        optimal = float(np.sqrt(np.sum(snrs**2)))
        score = search.score(signal)
        assert 0.97 * bank.minimal_match * optimal < score.snr <= optimal * 1.01, (seed, score.snr, optimal)
        # Timing: the H1 merger time within ~15 ms (it trades off against the masses and spins).
        delay = detectors.time_delay_from_geocenter("H1", params.ra, params.dec, params.gps_time + params.tc)
        assert abs(score.tc - (params.tc + delay)) < 0.015, (score.tc, params.tc + delay)


def test_true_template_search_recovers_the_snr_in_noise(design_psd):
    params, signal, _ = _source(7, network_snr=12.0)
    search = mf.MatchedFilter(_true_bank(params), design_psd, CFG)
    found = np.array([search.score(signal + gw_sample.make_noise(505, i)).snr for i in range(16)])
    # Maximizing over phases and lags adds a little noise power: sqrt(12^2 + ~4) = 12.2; the taper costs ~2 %.
    assert 11.3 < found.mean() < 13.0, found
    assert found.min() > 9.0


def test_high_snr_auc(search):
    """The quality bar: AUC >= 0.999 at injected SNR >= 12 (IMRPhenomD signals, aligned spins)."""
    from model.metrics import roc_auc

    spec = priors.SampleSpec(snr_range=(12.0, 20.0))
    plans = gw_sample.plan_samples(60, seed=9)
    labels, scores = [], []
    for plan in plans:
        strain, _ = gw_sample.make_sample(plan, 9, spec)
        labels.append(plan.target)
        scores.append(search.score(strain).snr)
    assert sum(labels) == 30
    assert roc_auc(labels, scores) >= 0.999
    noise = np.array(scores)[np.array(labels) == 0]
    assert 4.0 < noise.mean() < 7.5  # the noise level of the maximized statistic: sqrt(~30)


def test_refuses_bad_settings_and_inputs(bank, design_psd):
    with pytest.raises(ValueError, match="tc_range"):
        mf.MatchedFilterConfig(tc_range=(1.5, 2.5))
    bad = design_psd.copy()
    bad[1, 100] = 0.0
    with pytest.raises(ValueError, match="finite and > 0"):
        mf.MatchedFilter(bank, bad, CFG)
    search = mf.MatchedFilter(bank, design_psd, CFG)
    with pytest.raises(ValueError, match="shape"):
        search.score(np.zeros((2, CFG.n_samples)))
    nan = gw_sample.make_noise(1, 1)
    nan[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        search.score(nan)
