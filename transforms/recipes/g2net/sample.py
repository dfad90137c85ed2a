"""Realistic G2Net-style sample data: design-curve detector noise plus projected IMR compact-binary signals.

The output reproduces the raw layout of the Kaggle "G2Net Gravitational Wave Detection" data set::

    OUT/train/{id[0]}/{id[1]}/{id[2]}/{id}.npy   strain: (3, 4096) float64, rows H1, L1, V1; 2 s at 2048 Hz
    OUT/training_labels.csv                      id,target,source_id
    OUT/injections.csv                           truth table, one row per sample (INJECTION_COLUMNS)
    OUT/glitches.csv                             glitch truth, one row per glitch (GLITCH_COLUMNS), when
                                                 glitches are on (``transforms.recipes.g2net.glitches``)

Physics from LALSuite/PyCBC: the noise (PSDs of ``pycbc.psd``) and the SNR inner product are in
``transforms.recipes.g2net.noise``, the waveform (``pycbc.waveform.get_td_waveform``, IMRPhenomD by default) and
its projection onto H1, L1, V1 (``pycbc.detector``) in ``transforms.recipes.g2net.waveform``, the priors
(``SampleSpec``) in ``transforms.recipes.g2net.priors``. Loudness: the distance is chosen so that the network
optimal SNR (the model PSDs, ``f >= f_low``, the in-window signal) equals a target drawn uniformly from
``snr_range``, or drawn uniform in volume when ``snr_range`` is None.

Randomness is ``numpy.random.default_rng`` over ``SeedSequence(seed, spawn_key=(stream, index))``: the noise of
sample ``i`` and the parameters of source ``j`` can be made independently of every other sample (parallel
safe), and the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from transforms.recipes.g2net.detectors import NETWORK
from transforms.recipes.g2net.glitches import GLITCH_COLUMNS, GlitchSpec, draw_glitches, render_glitches, truth_rows
from transforms.recipes.g2net.noise import network_noise, optimal_snr
from transforms.recipes.g2net.priors import SampleSpec
from transforms.recipes.g2net.psd_models import network_psd
from transforms.recipes.g2net.waveform import SourceParams, render_injection

logger = logging.getLogger(__name__)

SIDEREAL_DAY_S = 86164.0905
DEFAULT_SPEC = SampleSpec()  # frozen, so safe as the shared default argument

# Random streams of SeedSequence(seed, spawn_key=(stream, index)).
_NOISE_STREAM = 0
_SOURCE_STREAM = 1
_PLAN_STREAM = 2
_GLITCH_STREAM = 3

LABEL_COLUMNS = ("id", "target", "source_id")
INJECTION_COLUMNS = (
    "id",
    "source_id",
    "target",
    "snr",
    "snr_h1",
    "snr_l1",
    "snr_v1",
    "m1",
    "m2",
    "chirp_mass",
    "spin1x",
    "spin1y",
    "spin1z",
    "spin2x",
    "spin2y",
    "spin2z",
    "chi_eff",
    "ra",
    "dec",
    "psi",
    "inclination",
    "phase",
    "tc",
    "gps_time",
    "distance_mpc",
    "f_low",
    "approximant",
)


# ----------------------------------------------------------------------------------------------------------
# Samples


@dataclass(frozen=True)
class SamplePlan:
    """Where sample ``index`` sits: its 10-hex ``id``, label ``target`` (0/1), its group key ``source_id`` and,
    for positives, the index of the source it carries (``source_index = -1`` for noise)."""

    index: int
    id: str
    target: int
    source_id: str
    source_index: int


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def _draw_spins(rng: np.random.Generator, spec: SampleSpec) -> dict[str, float]:
    if spec.spin_mode == "aligned":
        s1z, s2z = rng.uniform(-spec.spin_max, spec.spin_max, size=2)
        return dict(spin1x=0.0, spin1y=0.0, spin1z=float(s1z), spin2x=0.0, spin2y=0.0, spin2z=float(s2z))
    out = {}
    for k in ("1", "2"):
        a = rng.uniform(0.0, spec.spin_max)
        cos_t, phi = rng.uniform(-1.0, 1.0), rng.uniform(0.0, 2.0 * math.pi)
        sin_t = math.sqrt(1.0 - cos_t * cos_t)
        out.update({f"spin{k}x": a * sin_t * math.cos(phi), f"spin{k}y": a * sin_t * math.sin(phi)})
        out[f"spin{k}z"] = a * cos_t
    return out


def draw_source(rng: np.random.Generator, spec: SampleSpec = DEFAULT_SPEC) -> tuple[SourceParams, np.ndarray]:
    """Random source from the priors of ``spec`` (``transforms.recipes.g2net.priors``).

    Returns the parameters and the per-detector optimal SNRs (3,) float64 (H1, L1, V1) of the in-window signal
    with the ``spec.psd_model`` PSDs. With ``spec.snr_range`` the distance is solved for a network SNR drawn
    uniformly from it, otherwise drawn uniform in volume within ``spec.distance_range``.
    """
    m_a, m_b = rng.uniform(*spec.mass_range, size=2)
    d_lo, d_hi = spec.distance_range
    fiducial = SourceParams(
        m1=float(max(m_a, m_b)),
        m2=float(min(m_a, m_b)),
        **_draw_spins(rng, spec),
        ra=float(rng.uniform(0.0, 2.0 * math.pi)),
        dec=float(np.arcsin(rng.uniform(-1.0, 1.0))),
        psi=float(rng.uniform(0.0, math.pi)),
        inclination=float(np.arccos(rng.uniform(-1.0, 1.0))),
        phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        tc=float(rng.uniform(*spec.tc_range)),
        gps_time=float(spec.gps_epoch + rng.uniform(0.0, SIDEREAL_DAY_S)),
        distance_mpc=float(rng.uniform(d_lo**3, d_hi**3) ** (1.0 / 3.0)),
        f_low=spec.f_low,
        approximant=spec.approximant,
    )
    target_snr = float(rng.uniform(*spec.snr_range)) if spec.snr_range else None
    psd = network_psd(NETWORK, spec.n_samples, spec.fs, spec.psd_model)
    snrs = optimal_snr(render_injection(fiducial, spec.fs, spec.n_samples), psd, spec.fs, spec.f_low)
    if target_snr is None:
        return fiducial, snrs
    network = float(np.sqrt(np.sum(snrs**2)))
    if not network > 0:
        raise ValueError(f"source {fiducial} leaves no signal in the window")
    params = SourceParams(**{**asdict(fiducial), "distance_mpc": fiducial.distance_mpc * network / target_snr})
    return params, snrs * (target_snr / network)


def _sample_id(seed: int, index: int, attempt: int) -> str:
    return hashlib.sha256(f"sigforge-g2net:{seed}:{index}:{attempt}".encode()).hexdigest()[:10]


def plan_samples(n: int, seed: int, signals_per_source: int = 1, positive_fraction: float = 0.5) -> list[SamplePlan]:
    """Ids, labels and groups of ``n`` samples, deterministic in ``seed``.

    ``round(n * positive_fraction)`` samples, at positions chosen by a seeded permutation, are positives; they
    are dealt in order to sources, ``signals_per_source`` each (the last source may get fewer). A source's
    ``source_id`` is the id of its lowest-index sample; a noise sample is its own group (``source_id = id``).
    """
    if n < 1 or signals_per_source < 1 or not 0.0 <= positive_fraction <= 1.0 or seed < 0:
        raise ValueError(
            f"need n >= 1, signals_per_source >= 1, 0 <= positive_fraction <= 1, seed >= 0; got "
            f"{n}, {signals_per_source}, {positive_fraction}, {seed}"
        )
    ids: list[str] = []
    seen: set[str] = set()
    for index in range(n):
        attempt = 0
        while (sample_id := _sample_id(seed, index, attempt)) in seen:
            attempt += 1
        seen.add(sample_id)
        ids.append(sample_id)

    n_pos = int(round(n * positive_fraction))
    order = _rng(seed, _PLAN_STREAM, 0).permutation(n)
    source_of = np.full(n, -1, dtype=np.int64)
    source_of[order[:n_pos]] = np.arange(n_pos) // signals_per_source
    first_index: dict[int, int] = {}
    for index in range(n):
        if source_of[index] >= 0:
            first_index.setdefault(int(source_of[index]), index)
    return [
        SamplePlan(
            index=index,
            id=ids[index],
            target=int(source_of[index] >= 0),
            source_id=ids[first_index[int(source_of[index])]] if source_of[index] >= 0 else ids[index],
            source_index=int(source_of[index]),
        )
        for index in range(n)
    ]


def make_noise(seed: int, index: int, spec: SampleSpec = DEFAULT_SPEC) -> np.ndarray:
    """The noise of sample ``index`` for ``seed``: (3, n_samples) float64 strain at ``spec.fs`` Hz."""
    return network_noise(_rng(seed, _NOISE_STREAM, index), spec.fs, spec.n_samples, NETWORK, spec.psd_model)


def make_source(seed: int, source_index: int, spec: SampleSpec = DEFAULT_SPEC) -> tuple[SourceParams, np.ndarray]:
    """Source ``source_index`` for ``seed``: parameters and per-detector SNRs (3,), see ``draw_source``."""
    return draw_source(_rng(seed, _SOURCE_STREAM, source_index), spec)


def make_glitches(seed: int, index: int, glitches: GlitchSpec, spec: SampleSpec = DEFAULT_SPEC):
    """The glitches of sample ``index`` for ``seed`` (their own random stream): ``(list of Glitch, strain (3,
    n_samples) float64)``."""
    drawn = draw_glitches(_rng(seed, _GLITCH_STREAM, index), glitches, NETWORK)
    return drawn, render_glitches(drawn, spec.fs, spec.n_samples, spec.psd_model, spec.f_low, NETWORK)


def _fmt(value: float | str) -> str:
    return value if isinstance(value, str) else repr(float(value))


def make_sample(plan: SamplePlan, seed: int, spec: SampleSpec = DEFAULT_SPEC) -> tuple[np.ndarray, dict[str, str]]:
    """Strain and truth row of one planned sample.

    Returns ``strain``: (3, n_samples) float64 (H1, L1, V1) at ``spec.fs`` Hz, noise plus, for positives, the
    injected signal; and the ``injections.csv`` row (dict of strings keyed by ``INJECTION_COLUMNS``; floats
    written with ``repr`` so they round-trip exactly).
    """
    strain = make_noise(seed, plan.index, spec)
    row = dict.fromkeys(INJECTION_COLUMNS, "")
    row.update(id=plan.id, source_id=plan.source_id, target=str(plan.target))
    if plan.target:
        params, snrs = make_source(seed, plan.source_index, spec)
        strain += render_injection(params, spec.fs, spec.n_samples)
        row.update({name: _fmt(value) for name, value in asdict(params).items()})
        row.update(
            snr=_fmt(np.sqrt(np.sum(snrs**2))),
            snr_h1=_fmt(snrs[0]),
            snr_l1=_fmt(snrs[1]),
            snr_v1=_fmt(snrs[2]),
            chirp_mass=_fmt(params.chirp_mass),
            chi_eff=_fmt(params.chi_eff),
        )
    else:
        row.update(snr="0.0", snr_h1="0.0", snr_l1="0.0", snr_v1="0.0")
    return strain, row


def sample_path(out_dir: str, sample_id: str) -> str:
    """Kaggle path of one sample: ``OUT/train/{id[0]}/{id[1]}/{id[2]}/{id}.npy``."""
    return os.path.join(out_dir, "train", sample_id[0], sample_id[1], sample_id[2], f"{sample_id}.npy")


def _write_csv(path: str, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write a CSV atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_g2net_sample(
    out_dir: str,
    n: int,
    seed: int,
    signals_per_source: int = 1,
    positive_fraction: float = 0.5,
    snr_range: tuple[float, float] | None = (4.0, 20.0),
    *,
    overwrite: bool = False,
    glitches: GlitchSpec | None = None,
    **priors,
) -> dict:
    """Write ``n`` G2Net-layout samples to ``out_dir`` (local path) and return a summary.

    Files: ``train/{id[0]}/{id[1]}/{id[2]}/{id}.npy`` (strain (3, 4096) float64, H1/L1/V1, 2048 Hz),
    ``training_labels.csv`` (``id,target,source_id``) and ``injections.csv`` (``INJECTION_COLUMNS``; noise rows
    have SNR 0.0 and empty source parameters), all in sample-index order. With ``signals_per_source = K``
    each positive source (one waveform and sky position) is injected into K independent noise draws sharing
    one ``source_id``; noise samples are their own group. The CSVs are written last, so a folder with
    ``training_labels.csv`` is complete. Refuses an existing ``training_labels.csv`` unless ``overwrite``.

    ``positive_fraction = 0`` writes a noise-only background (no waveform is generated: ~30 ms a sample).
    ``glitches`` (a ``GlitchSpec`` with ``rate > 0``) adds single-detector glitches to noise and signal samples
    alike and writes their truth to ``glitches.csv`` (``GLITCH_COLUMNS``, one row per glitch).

    ``priors``: any other ``SampleSpec`` field (``approximant``, ``psd_model``, ``mass_range``, ``spin_mode``,
    ``spin_max``, ``distance_range``, ``tc_range``, ...).

    Returns ``{"n", "positives", "sources", "seed", "signals_per_source", "train_dir", "labels_csv",
    "injections_csv"}``.
    """
    spec = SampleSpec(snr_range=tuple(snr_range) if snr_range else None, **priors)
    labels_csv = os.path.join(out_dir, "training_labels.csv")
    injections_csv = os.path.join(out_dir, "injections.csv")
    train_dir = os.path.join(out_dir, "train")
    if os.path.exists(labels_csv):
        if not overwrite:
            raise FileExistsError(f"{labels_csv} exists; pass overwrite=True to replace the sample")
        shutil.rmtree(train_dir, ignore_errors=True)
        if os.path.exists(glitches_csv := os.path.join(out_dir, "glitches.csv")):
            os.remove(glitches_csv)

    started = time.perf_counter()
    plans = plan_samples(n, seed, signals_per_source, positive_fraction)
    rows, glitch_rows = [], []
    made_dirs: set[str] = set()
    for plan in plans:
        strain, row = make_sample(plan, seed, spec)
        if glitches is not None and glitches.rate > 0:
            drawn, glitch_strain = make_glitches(seed, plan.index, glitches, spec)
            strain += glitch_strain
            glitch_rows += truth_rows(plan.id, drawn)
        path = sample_path(out_dir, plan.id)
        if (folder := os.path.dirname(path)) not in made_dirs:
            os.makedirs(folder, exist_ok=True)
            made_dirs.add(folder)
        np.save(path, strain)
        rows.append(row)
    if glitches is not None and glitches.rate > 0:
        _write_csv(os.path.join(out_dir, "glitches.csv"), GLITCH_COLUMNS, glitch_rows)
    _write_csv(injections_csv, INJECTION_COLUMNS, rows)
    _write_csv(labels_csv, LABEL_COLUMNS, [{k: row[k] for k in LABEL_COLUMNS} for row in rows])

    positives = sum(plan.target for plan in plans)
    sources = len({plan.source_index for plan in plans if plan.target})
    logger.info(
        "wrote %d G2Net samples (%d positive from %d sources, seed %d) to %s in %.1f s",
        n,
        positives,
        sources,
        seed,
        out_dir,
        time.perf_counter() - started,
    )
    return {
        "n": n,
        "positives": positives,
        "sources": sources,
        "seed": seed,
        "signals_per_source": signals_per_source,
        "train_dir": train_dir,
        "labels_csv": labels_csv,
        "injections_csv": injections_csv,
        **({"glitches": len(glitch_rows)} if glitches is not None and glitches.rate > 0 else {}),
    }
