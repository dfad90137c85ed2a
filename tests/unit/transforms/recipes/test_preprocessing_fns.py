"""In-memory (tft_unit-style) tests of every tf.Transform ``preprocessing_fn``, against the numpy references.

Each preprocessing_fn runs through ``tft_beam.AnalyzeAndTransformDataset`` over a small list of instance dicts
(``DatasetMetadata`` from the raw feature spec) on Beam's in-process FnApiRunner, inside
``tft_beam.Context(force_tf_compat_v1=True)`` as the analyze stage runs it. No shards and no stage code: the
outputs are collected by a matcher, the named statistics are read back from the written ``transform_fn`` by a
test-local copy of the stage's reader, and both are compared with numpy computed here from the same inputs.
One module-scoped run per recipe keeps the TensorFlow/Beam start-up cost to a few pipelines.
"""

from __future__ import annotations

import functools
import pickle

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import BeamAssertException, assert_that

from transforms.contract import LABEL, RAW_DTYPE, STRAIN, TARGET_ID, UID
from transforms.recipes.g2net import preprocessing, signal
from transforms.recipes.tce.preprocessing import (
    TCE_STATS_EXAMPLES,
    TCE_UID,
    TceParams,
    make_tce_preprocessing_fn,
    tce_normalize_reference,
    tce_raw_feature_spec,
)

# ---- helpers ------------------------------------------------------------------------------------------------------


def _dump(actual, path, expected_count):
    """assert_that matcher: checks the element count and pickles the elements for the test process to read."""
    actual = list(actual)
    if len(actual) != expected_count:
        raise BeamAssertException(f"expected {expected_count} elements, got {len(actual)}")
    with open(path, "wb") as handle:
        pickle.dump(actual, handle)


def _collect(pcoll, path, expected_count, label):
    assert_that(pcoll, functools.partial(_dump, path=str(path), expected_count=expected_count), label=label)


def _load(path, by_uid=True):
    with open(path, "rb") as handle:
        rows = pickle.load(handle)
    return {row[UID]: row for row in rows} if by_uid else rows


def _read_stats(transform_fn_dir, names):
    """The named ``tf.identity`` statistics of a TF1 transform_fn (what ``analyze.read_stats`` does)."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.saved_model.loader.load(session, ["transform"], str(transform_fn_dir))
        ops = {op.name.rsplit("/", 1)[-1]: op.name for op in graph.get_operations() if op.type == "Identity"}
        missing = set(names) - set(ops)
        assert not missing, f"transform_fn lacks the statistics {sorted(missing)}"
        values = session.run({name: f"{ops[name]}:0" for name in names})
    return {name: np.asarray(value, dtype=np.float64) for name, value in values.items()}


def _analyze_and_transform(pipeline, instances, spec, preprocessing_fn, name, tmp, transform_extra=None):
    """AnalyzeAndTransformDataset (+ optional TransformDataset of ``transform_extra``); outputs collected under
    ``tmp``, transform_fn written to ``tmp/<name>/transform_fn``."""
    metadata = tft.DatasetMetadata.from_feature_spec(spec)
    raw = pipeline | f"Create[{name}]" >> beam.Create(instances)
    (transformed, _), transform_fn = (raw, metadata) | f"AnalyzeAndTransform[{name}]" >> (
        tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    )
    _ = transform_fn | f"WriteTransformFn[{name}]" >> tft_beam.WriteTransformFn(str(tmp / name))
    _collect(transformed, tmp / f"{name}.pkl", len(instances), f"Collect[{name}]")
    if transform_extra is not None:
        extra = pipeline | f"CreateExtra[{name}]" >> beam.Create(transform_extra)
        (extra_out, _) = ((extra, metadata), transform_fn) | f"TransformExtra[{name}]" >> tft_beam.TransformDataset()
        _collect(extra_out, tmp / f"{name}_extra.pkl", len(transform_extra), f"CollectExtra[{name}]")


def _run(tmp, build):
    """Runs ``build(pipeline)`` on the in-process FnApiRunner inside a TF1-compat tf.Transform context."""
    with tft_beam.Context(temp_dir=str(tmp / "tft_tmp"), force_tf_compat_v1=True):
        with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
            build(pipeline)


# ---- g2net: noise PSD (pass 1) and whitening + standardization (pass 2) ---------------------------------------------

PARAMS = preprocessing.StrainParams(n_channels=2, n_samples=256, fs=256.0, band=(10.0, 100.0))
LABELS = (0, 1, 0, 0, 1, 0, 1, 0)  # 5 noise-only examples, 3 with an injected signal
CHANNEL_SCALE = np.array([1.0e-21, 3.0e-21])


def _strain_instances():
    """Seeded coloured noise at physical scale (~1e-21); label-1 examples carry a strong 40 Hz sine, so an average
    PSD that included them would differ visibly in band."""
    rng = np.random.default_rng(20240611)
    t = np.arange(PARAMS.n_samples) / PARAMS.fs
    instances, strains = [], {}
    for i, label in enumerate(LABELS):
        white = rng.standard_normal((PARAMS.n_channels, PARAMS.n_samples + 4))
        coloured = white[:, 4:] + 0.8 * white[:, 3:-1] + 0.3 * white[:, :-4]  # low-frequency-heavy MA(4) noise
        x = coloured * CHANNEL_SCALE[:, None]
        if label == 1:
            x = x + 8.0 * CHANNEL_SCALE[:, None] * np.sin(2 * np.pi * 40.0 * t + rng.uniform(0, 2 * np.pi))
        raw = np.ascontiguousarray(x, dtype=RAW_DTYPE)
        uid = f"gw-{i:02d}"
        strains[uid.encode()] = raw.astype(np.float64)  # what the transform decodes: the float32 values
        instances.append({UID: uid.encode(), TARGET_ID: f"src-{i // 2}".encode(), LABEL: label, STRAIN: raw.tobytes()})
    return instances, strains


def _strain_references(instances, strains):
    """Numpy oracles: label-0 average periodogram, then per-channel stats of the whitened, windowed strain."""
    window = ("tukey", PARAMS.tukey_alpha)
    psds = {uid: signal.periodogram_psd(x, PARAMS.fs, window=window)[1] for uid, x in strains.items()}
    noise = [row[UID] for row in instances if row[LABEL] in PARAMS.psd_labels]
    avg_psd = np.mean([psds[uid] for uid in noise], axis=0)
    all_psd = np.mean(list(psds.values()), axis=0)
    windowed = np.stack(
        [
            signal.apply_tukey(signal.whiten(x, avg_psd, PARAMS.fs, PARAMS.band), PARAMS.tukey_alpha)
            for x in strains.values()
        ]
    )
    mean = windowed.mean(axis=(0, 2))
    std = windowed.std(axis=(0, 2))
    return {
        "avg_psd": avg_psd,
        "all_psd": all_psd,
        "psd_examples": len(noise),
        "channel_mean": mean,
        "channel_std": std,
    }


@pytest.fixture(scope="module")
def strain_run(tmp_path_factory):
    """Pass 1 (psd_fn) and the chained single-fn pass 2 in one pipeline; then pass 2 with pass 1's PSD as a constant
    (how the analyze stage streams) in a second one."""
    tmp = tmp_path_factory.mktemp("strain_tft")
    instances, strains = _strain_instances()
    spec = preprocessing.raw_feature_spec()

    def first(pipeline):
        _analyze_and_transform(pipeline, instances, spec, preprocessing.make_psd_fn(PARAMS), "psd", tmp)
        _analyze_and_transform(pipeline, instances, spec, preprocessing.make_preprocessing_fn(PARAMS), "chained", tmp)

    _run(tmp, first)
    psd_stats = _read_stats(tmp / "psd" / "transform_fn", ("avg_psd", "psd_examples"))

    def second(pipeline):
        fn = preprocessing.make_preprocessing_fn(PARAMS, noise_psd=psd_stats)
        _analyze_and_transform(pipeline, instances, spec, fn, "two_pass", tmp)

    _run(tmp, second)
    return {
        "instances": {row[UID]: row for row in instances},
        "strains": strains,
        "ref": _strain_references(instances, strains),
        "psd_stats": psd_stats,
        "psd_out": _load(tmp / "psd.pkl", by_uid=False),
        "variants": {
            variant: (
                _load(tmp / f"{variant}.pkl"),
                _read_stats(tmp / variant / "transform_fn", preprocessing.STAT_NAMES),
            )
            for variant in ("chained", "two_pass")
        },
    }


def test_average_psd_is_label0_mean_of_periodograms(strain_run):
    ref, stats = strain_run["ref"], strain_run["psd_stats"]
    assert stats["avg_psd"].shape == (PARAMS.n_channels, PARAMS.n_freq)
    assert np.all(stats["avg_psd"] > 0) and np.all(stats["avg_psd"] < 1e-38)  # float64: ~1e-42/Hz, no underflow
    np.testing.assert_allclose(stats["avg_psd"], ref["avg_psd"], rtol=1e-9, atol=0)
    # label-1 examples are excluded: the all-examples average is far off at the injected 40 Hz line
    assert not np.allclose(stats["avg_psd"], ref["all_psd"], rtol=0.1, atol=0)
    assert float(stats["psd_examples"]) == ref["psd_examples"] == LABELS.count(0)


def test_psd_fn_outputs_only_the_label(strain_run):
    out = strain_run["psd_out"]
    assert all(set(row) == {LABEL} for row in out)
    assert sorted(int(np.asarray(row[LABEL]).item()) for row in out) == sorted(LABELS)


@pytest.mark.parametrize("variant", ["chained", "two_pass"])
def test_strain_statistics_match_numpy(strain_run, variant):
    ref = strain_run["ref"]
    _, stats = strain_run["variants"][variant]
    np.testing.assert_allclose(stats["avg_psd"], ref["avg_psd"], rtol=1e-9, atol=0)
    assert float(stats["psd_examples"]) == ref["psd_examples"]
    np.testing.assert_allclose(stats["channel_std"], ref["channel_std"], rtol=1e-8)
    mean_atol = 1e-10 * ref["channel_std"].min()  # the mean is ~0: compare on the scale of the std
    np.testing.assert_allclose(stats["channel_mean"], ref["channel_mean"], rtol=1e-6, atol=mean_atol)
    assert np.all(ref["channel_std"] > 0.1)  # whitened strain is O(1): the float64 path did not lose it


@pytest.mark.parametrize("variant", ["chained", "two_pass"])
def test_strain_outputs_match_normalize_reference(strain_run, variant):
    out, stats = strain_run["variants"][variant]
    ref = strain_run["ref"]
    assert set(out) == set(strain_run["instances"])
    for uid, row in out.items():
        got = np.asarray(row[STRAIN])
        assert got.dtype == np.float32
        got = got.reshape(PARAMS.n_channels, PARAMS.n_samples)
        x = strain_run["strains"][uid]
        # the oracle with statistics computed in numpy here, and with the statistics the analysis produced
        expected = preprocessing.normalize_reference(x, ref, PARAMS)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"{variant} {uid!r}")
        np.testing.assert_allclose(got, preprocessing.normalize_reference(x, stats, PARAMS), rtol=1e-5, atol=1e-5)
    # standardized over all examples: per-channel mean 0, std 1
    stacked = np.stack([np.asarray(row[STRAIN], np.float64).reshape(PARAMS.n_channels, -1) for row in out.values()])
    np.testing.assert_allclose(stacked.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(stacked.std(axis=(0, 2)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("variant", ["chained", "two_pass"])
def test_strain_keys_pass_through(strain_run, variant):
    out, _ = strain_run["variants"][variant]
    for uid, row in out.items():
        raw = strain_run["instances"][uid]
        assert set(row) == {UID, TARGET_ID, LABEL, STRAIN}
        assert row[UID] == raw[UID]
        assert row[TARGET_ID] == raw[TARGET_ID]
        assert int(np.asarray(row[LABEL]).item()) == raw[LABEL]


# ---- tce: z-scored light-curve views ---------------------------------------------------------------------------

TCE_PARAMS = TceParams(views=(("flux_window", 8), ("flat_view", 4)))
FLAT_VALUE = 1.5  # every train example: std 0, so the view is only centred
N_TCE_TRAIN = 6


def _tce_instances(n, seed, flat_value):
    rng = np.random.default_rng(seed)
    instances = []
    for i in range(n):
        flux = 2e-3 * rng.standard_normal(8) + 5e-4 * i  # relative flux minus one, a per-example offset
        flat = np.full(4, flat_value)
        instances.append(
            {
                UID: f"tce-{seed}-{i}".encode(),
                TARGET_ID: f"star-{i // 2}".encode(),
                LABEL: i % 2,
                TCE_UID: f"star-{i // 2}_{i % 2 + 1}".encode(),
                "flux_window": np.asarray(flux, RAW_DTYPE).tobytes(),
                "flat_view": np.asarray(flat, RAW_DTYPE).tobytes(),
            }
        )
    return instances


def _views(row):
    return {name: np.frombuffer(row[name], RAW_DTYPE).astype(np.float64) for name, _ in TCE_PARAMS.views}


@pytest.fixture(scope="module")
def tce_run(tmp_path_factory):
    """Analyze-and-transform of the train examples, plus a transform of eval examples whose flat view differs."""
    tmp = tmp_path_factory.mktemp("tce_tft")
    train = _tce_instances(N_TCE_TRAIN, seed=3, flat_value=FLAT_VALUE)
    extra = _tce_instances(2, seed=4, flat_value=FLAT_VALUE + 0.5)
    fn = make_tce_preprocessing_fn(TCE_PARAMS)
    _run(tmp, lambda p: _analyze_and_transform(p, train, tce_raw_feature_spec(TCE_PARAMS), fn, "tce", tmp, extra))
    return {
        "train": {row[UID]: row for row in train},
        "extra": {row[UID]: row for row in extra},
        "out": _load(tmp / "tce.pkl"),
        "extra_out": _load(tmp / "tce_extra.pkl"),
        "stats": _read_stats(tmp / "tce" / "transform_fn", TCE_PARAMS.stat_names),
    }


def test_tce_statistics_match_numpy(tce_run):
    stats = tce_run["stats"]
    values = {
        name: np.concatenate([_views(row)[name] for row in tce_run["train"].values()]) for name, _ in TCE_PARAMS.views
    }
    for name, _ in TCE_PARAMS.views:
        np.testing.assert_allclose(stats[f"{name}_mean"], values[name].mean(), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(stats[f"{name}_std"], values[name].std(), rtol=1e-7, atol=1e-15)
    assert stats["flux_window_std"] > 1e-3
    assert float(stats["flat_view_std"]) == 0.0
    assert float(stats[TCE_STATS_EXAMPLES]) == N_TCE_TRAIN


@pytest.mark.parametrize("split", ["train", "extra"])
def test_tce_outputs_are_z_scored(tce_run, split):
    raw, out = tce_run[split], tce_run["out" if split == "train" else "extra_out"]
    assert set(out) == set(raw)
    values = {
        name: np.concatenate([_views(row)[name] for row in tce_run["train"].values()]) for name, _ in TCE_PARAMS.views
    }
    numpy_stats = {}
    for name, _ in TCE_PARAMS.views:
        numpy_stats[f"{name}_mean"], numpy_stats[f"{name}_std"] = values[name].mean(), values[name].std()
    for uid, row in out.items():
        views = _views(raw[uid])
        expected = tce_normalize_reference(views, numpy_stats)
        for name, length in TCE_PARAMS.views:
            got = np.asarray(row[name])
            assert got.dtype == np.float32 and got.shape == (length,)
            np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-6, err_msg=f"{uid!r} {name}")
            np.testing.assert_allclose(
                got, tce_normalize_reference(views, tce_run["stats"])[name], rtol=1e-5, atol=1e-6
            )
        # zero train std: only centred (not divided by ~0), so eval values keep their offset from the train mean
        np.testing.assert_allclose(np.asarray(row["flat_view"]), views["flat_view"] - FLAT_VALUE, atol=1e-7)
    if split == "train":
        flux = np.concatenate([np.asarray(row["flux_window"], np.float64) for row in out.values()])
        assert abs(flux.mean()) < 1e-6 and abs(flux.std() - 1.0) < 1e-5


def test_tce_keys_pass_through(tce_run):
    for split, out in (("train", tce_run["out"]), ("extra", tce_run["extra_out"])):
        for uid, row in out.items():
            raw = tce_run[split][uid]
            assert set(row) == {UID, TARGET_ID, LABEL, TCE_UID} | {name for name, _ in TCE_PARAMS.views}
            assert (row[UID], row[TARGET_ID], row[TCE_UID]) == (raw[UID], raw[TARGET_ID], raw[TCE_UID])
            assert int(np.asarray(row[LABEL]).item()) == raw[LABEL]
