"""Train-time injection numerics: a bank of normalized (pre-whitened) waveforms at unit network SNR.

Every step of the strain path after the raw file is linear or affine in the strain (docs/ARCHITECTURE.md
section 2): the build's zero-phase bandpass (``signal.bandpass``, ``sosfiltfilt`` with odd padding), whitening by
the fixed train-average PSD (``signal.whiten``), the Tukey window (``signal.apply_tukey``) and standardization with
the fixed train per-channel mean and std (``signal.standardize``). So, with ``L`` the linear part
(bandpass -> whiten -> window -> divide by the std, no mean subtraction)::

    normalize(n + h) = normalize(n) + L(h)

up to the float32 cast the build applies to the bandpassed strain (a relative 6e-8 of the strain). A trainer can
therefore make a valid positive from any normalized noise-only example by adding ``rho * L(h_unit)``, where
``h_unit`` is a projected waveform scaled to network optimal SNR 1 (the generator's SNR: ``noise.optimal_snr``
with the model PSDs of ``spec.psd_model``, what ``pycbc.filter.sigma`` computes), and ``rho`` the wanted SNR.

``linear_part`` reuses the very functions of the normal path (``signal``) with the dataset's statistics;
``waveform_bank`` draws sources from a ``SampleSpec`` prior with the generator's own ``draw_source`` and
``render_injection`` (PyCBC/LALSimulation). Pure numpy; no Beam, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from transforms.recipes.g2net import signal
from transforms.recipes.g2net.priors import SampleSpec

logger = logging.getLogger(__name__)

# SampleSpec fields a bank prior may not change: they are the dataset's format, taken from its config.
_FORMAT_FIELDS = ("fs", "n_samples")
# Random stream of the bank's sources (SeedSequence(seed, spawn_key=(_BANK_STREAM, index))); distinct from the
# generator's streams 0-2 so a bank drawn with the data's seed does not repeat the data's sources.
_BANK_STREAM = 7
_GLITCH_BANK_STREAM = 8  # train-time glitch bank entries: SeedSequence(seed, spawn_key=(8, detector, i))


@dataclass(frozen=True)
class LinearPath:
    """What the linear part of the strain path needs: the dataset's format and bandpass, and its train statistics.

    ``avg_psd`` ``(n_channels, n_samples // 2 + 1)`` 1/Hz and ``channel_std`` ``(n_channels,)``, as written by the
    analyze stage to ``OUT/stats/train_stats.npz``; ``band`` the build bandpass (= the whitening band), Hz.
    """

    fs: float
    n_samples: int
    band: tuple[float, float]
    bandpass_order: int
    tukey_alpha: float
    avg_psd: np.ndarray
    channel_std: np.ndarray

    @classmethod
    def from_dataset(cls, section: Mapping[str, object], stats: Mapping[str, np.ndarray]) -> LinearPath:
        """From a manifest's resolved ``g2net`` config section (a plain mapping) and ``train_stats.npz`` arrays."""
        bandpass = dict(section.get("bandpass") or {})
        defaults = {"low_hz": 20.0, "high_hz": 500.0, "order": 8}
        bandpass = {**defaults, **bandpass}
        return cls(
            fs=float(section.get("sample_rate_hz", 2048.0)),
            n_samples=int(section.get("n_samples", 4096)),
            band=(float(bandpass["low_hz"]), float(bandpass["high_hz"])),
            bandpass_order=int(bandpass["order"]),
            tukey_alpha=float(section.get("tukey_alpha", 0.1)),
            avg_psd=np.asarray(stats["avg_psd"], dtype=np.float64),
            channel_std=np.asarray(stats["channel_std"], dtype=np.float64),
        )


def linear_part(h, path: LinearPath) -> np.ndarray:
    """``L(h)``: the normal path's numerics minus its constant offset, ``(n_channels, n_samples)`` float64.

    ``standardize(apply_tukey(whiten(bandpass(h), avg_psd), alpha), 0, channel_std)``, i.e. the build bandpass
    followed by ``signal.normalize_strain`` with the mean set to zero. For noise ``n`` and signal ``h``,
    ``normalize(n + h) = normalize(n) + linear_part(h)`` (tests/unit/transforms/recipes/g2net/test_injection.py).
    """
    low, high = path.band
    bandpassed = signal.bandpass(h, fs=path.fs, low_hz=low, high_hz=high, order=path.bandpass_order)
    zero = np.zeros_like(path.channel_std)
    return signal.normalize_strain(
        bandpassed, path.avg_psd, zero, path.channel_std, fs=path.fs, band=path.band, tukey_alpha=path.tukey_alpha
    )


def bank_spec(path: LinearPath, prior: Mapping[str, object] | None = None) -> SampleSpec:
    """The ``SampleSpec`` of a bank: the generator's defaults, the dataset's format, then ``prior`` (any other
    ``SampleSpec`` field, e.g. ``approximant``, ``mass_range``; the same keys as ``sigforge make-sample --prior``).
    ``snr_range`` is ignored (set to None): bank entries are scaled to unit network SNR after the draw."""
    prior = dict(prior or {})
    if fixed := sorted(set(prior) & set(_FORMAT_FIELDS)):
        raise ValueError(f"prior key(s) {fixed} are the dataset's format, not a prior")
    known = {f.name for f in dataclasses.fields(SampleSpec)}
    if unknown := sorted(set(prior) - known):
        raise ValueError(f"unknown g2net prior key(s) {unknown}; known: {sorted(known - set(_FORMAT_FIELDS))}")
    prior = {k: tuple(v) if isinstance(v, list) else v for k, v in prior.items()}
    prior.pop("snr_range", None)
    return SampleSpec(fs=path.fs, n_samples=path.n_samples, snr_range=None, **prior)


def unit_snr_waveform(rng: np.random.Generator, spec: SampleSpec) -> np.ndarray:
    """One source drawn from ``spec``'s prior, projected onto H1, L1, V1 and scaled to network optimal SNR 1
    (``spec.psd_model`` PSDs, ``f >= spec.f_low``, the in-window signal): ``(3, n_samples)`` float64 strain."""
    from transforms.recipes.g2net.sample import draw_source
    from transforms.recipes.g2net.waveform import render_injection

    # Without snr_range, draw_source keeps its drawn distance and reports the SNRs of that very waveform (its
    # polarizations are cached, so rendering it again costs only the projection).
    params, snrs = draw_source(rng, dataclasses.replace(spec, snr_range=None))
    network = float(np.sqrt(np.sum(snrs**2)))
    if not network > 0:
        raise ValueError(f"source {params} leaves no signal in the window")
    return render_injection(params, spec.fs, spec.n_samples) / network


def waveform_bank(n: int, seed: int, path: LinearPath, prior: Mapping[str, object] | None = None) -> np.ndarray:
    """``n`` normalized waveforms ``L(h_unit)``, ``(n, n_channels, n_samples)`` float32, deterministic in ``seed``.

    Entry ``i`` is drawn with ``default_rng(SeedSequence(seed, spawn_key=(7, i)))`` from ``bank_spec(path,
    prior)``; ``rho * bank[i]`` is the normalized signal of that source at network optimal SNR ``rho``.
    """
    if n < 1:
        raise ValueError(f"bank size must be >= 1, got {n}")
    spec = bank_spec(path, prior)
    started = time.perf_counter()
    bank = np.empty((n, path.avg_psd.shape[0], path.n_samples), dtype=np.float32)
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_BANK_STREAM, i)))
        bank[i] = linear_part(unit_snr_waveform(rng, spec), path).astype(np.float32)
    logger.info(
        "waveform bank: %d %s sources (masses %s, spins %s) in %.1f s",
        n,
        spec.approximant,
        spec.mass_range,
        spec.spin_mode,
        time.perf_counter() - started,
    )
    return bank


def glitch_bank(n: int, seed: int, path: LinearPath, spec, psd_model: str = "design") -> np.ndarray:
    """Train-time glitch bank: ``(n_detectors, n, n_samples)`` float32, entry ``[c, i]`` the normalized strain
    ``L(g)`` (:func:`linear_part` with the dataset's statistics ``path``) of a glitch in detector ``c`` drawn
    from ``spec`` (a ``glitches.GlitchSpec``; rate ignored) at unit optimal SNR
    (``psd_model`` PSD, as the generator). ``snr * bank[c, i]`` adds that glitch at SNR ``snr`` to normalized
    strain, since the normalization is affine (``normalize(n + g) = normalize(n) + L(g)``)."""
    from transforms.recipes.g2net.detectors import NETWORK
    from transforms.recipes.g2net.glitches import draw_glitches, render_glitches
    from transforms.recipes.g2net.waveform import F_LOW_HZ

    if n < 1:
        raise ValueError(f"glitch bank size must be >= 1, got {n}")
    detectors = NETWORK[: path.avg_psd.shape[0]]
    unit = dataclasses.replace(spec, rate=1.0, snr_range=(1.0, 1.0))
    bank = np.empty((len(detectors), n, path.n_samples), dtype=np.float32)
    for c, detector in enumerate(detectors):
        for i in range(n):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_GLITCH_BANK_STREAM, c, i)))
            (glitch,) = draw_glitches(rng, unit, (detector,))
            strain = render_glitches([glitch], path.fs, path.n_samples, psd_model, F_LOW_HZ, detectors)
            bank[c, i] = linear_part(strain, path)[c].astype(np.float32)
    return bank
