"""The vectorized light-curve numerics (binning.py, windows.py, ephemeris.py) give the results of the loop
implementation they replaced (``tests/oracles/tce_windows.py``, a copy of it): the same windows, uids, rows and drops,
and the same medians to float tolerance, on generated 6-quarter stars (every kind, short-period TCEs included)
and on the real Kepler-90 quarter. The one intended change, out-of-transit windows that must avoid a transit
predicted just past the end of the data, is tested on its own; the pinned stars are checked not to contain it.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.oracles import tce_windows as reference
from tests.support.tce_fixture import load_kepler90, make_cfg
from transforms.recipes.tce import binning, detrend, ephemeris, fits_io, schema, target, tce_table, windows
from transforms.recipes.tce import sample as tce_sample
from transforms.recipes.tce.detrend import Detrended


def _star_inputs(tmp_path_factory):
    """(cfg, [(curve, tces, spans)]) of 4 generated stars: 6 quarters of 40 days, kinds multi/planet/eb/mixed."""
    out = tmp_path_factory.mktemp("stars")
    tce_sample.write_tce_sample(
        str(out), n_targets=4, seed=5, quarters=6, days_per_quarter=40.0, kinds=("multi", "planet", "eb", "mixed")
    )
    cfg = make_cfg()
    with open(out / "tces.csv", newline="") as handle:
        tces = [tce_table.parse_tce(row, cfg) for row in csv.DictReader(handle)]
    stars = []
    for folder in sorted(p for p in out.glob("*/*") if p.is_dir()):
        curves = [fits_io.read_light_curve(p.read_bytes(), str(p), cfg) for p in sorted(folder.glob("*.fits"))]
        own = [t for t in tces if t.target_id == curves[0].target_id]
        curves.sort(key=lambda c: float(c.time[0]))
        spans = np.array([[c.time[0], c.time[-1]] for c in curves])
        stars.append((detrend.detrend(curves, own, cfg), own, spans))
    return cfg, stars


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    return _star_inputs(tmp_path_factory)


def _edge_affected(reference_examples, tces, cfg, spans) -> bool:
    """Whether a reference out-of-transit window reaches a transit predicted past the data (the fixed case)."""
    reach = 0.5 * cfg.window_durations * max(t.duration_days for t in tces)
    lo, hi = float(spans[:, 0].min()), float(spans[:, 1].max())
    everything = ephemeris.transit_intervals(tces, lo - reach, hi + reach, cfg.mask_width_factor)
    width = {t.tce_uid: cfg.window_durations * t.duration_days for t in tces}
    for e in reference_examples:
        if e.row["kind"] == schema.KIND_OOT:
            half = 0.5 * width[e.tce_uid]
            if ephemeris.overlaps_any(e.row["midtime"] - half, e.row["midtime"] + half, everything):
                return True
    return False


def assert_same_windows(new, old):
    (examples, drops), (ref_examples, ref_drops) = new, old
    assert [(e.uid, e.target_id, e.tce_uid, e.label, e.row) for e in examples] == [
        (e.uid, e.target_id, e.tce_uid, e.label, e.row) for e in ref_examples
    ]
    assert [(d.what, d.reason, d.detail) for d in drops] == [(d.what, d.reason, d.detail) for d in ref_drops]
    for e, r in zip(examples, ref_examples, strict=True):
        np.testing.assert_allclose(e.arrays[schema.FLUX_WINDOW], r.arrays[schema.FLUX_WINDOW], rtol=1e-12, atol=0)


def test_generated_stars_give_the_reference_windows(stars):
    cfg, star_list = stars
    kinds = set()
    for curve, tces, spans in star_list:
        old = reference.transit_windows(curve, tces, cfg, spans)
        assert not _edge_affected(old[0], tces, cfg, spans), "pin a star the edge fix does not touch"
        assert_same_windows(windows.transit_windows(curve, tces, cfg, spans), old)
        kinds |= {e.row["kind"] for e in old[0]} | {d.reason for d in old[1]}
    assert min(t.period_days for _, tces, _ in star_list for t in tces) < 1.5  # a short-period TCE is pinned
    assert {schema.KIND_TRANSIT, schema.KIND_OOT, schema.TRANSIT_IN_GAP} <= kinds


def test_kepler90_gives_the_reference_windows():
    cfg, curve, tces = load_kepler90()
    examples, drops = target.process_target(curve.target_id, [curve], tces, cfg)
    detrended = detrend.detrend([curve], tces, cfg)
    spans = np.array([[curve.time[0], curve.time[-1]]])
    old = reference.transit_windows(detrended, tces, cfg, spans)
    assert not _edge_affected(old[0], tces, cfg, spans)
    assert_same_windows(windows.transit_windows(detrended, tces, cfg, spans), old)
    assert [e.uid for e in examples] == [e.uid for e in old[0]] and len(examples) == 12


def test_interval_masks_and_counts_match_the_loops(stars):
    cfg, star_list = stars
    rng = np.random.default_rng(0)
    for curve, tces, spans in star_list:
        intervals = ephemeris.transit_intervals(tces, spans[0, 0], spans[-1, 1], cfg.mask_width_factor)
        np.testing.assert_array_equal(
            intervals, reference.transit_intervals(tces, spans[0, 0], spans[-1, 1], cfg.mask_width_factor)
        )
        np.testing.assert_array_equal(
            ephemeris.in_intervals(curve.time, intervals), reference.in_intervals(curve.time, intervals)
        )
        starts = rng.uniform(spans[0, 0], spans[-1, 1], 300)
        ends = starts + rng.uniform(0.0, 2.0, 300)
        counts = ephemeris.count_overlaps_many(starts, ends, intervals)
        expected = [reference.count_overlaps(s, e, intervals) for s, e in zip(starts, ends, strict=True)]
        np.testing.assert_array_equal(counts, expected)
        assert counts.max() > 0 and counts.min() == 0


def test_bin_median_matches_the_loop_with_empty_and_overlapping_bins():
    rng = np.random.default_rng(1)
    for trial in range(40):
        n = int(rng.integers(0, 60))
        x = np.sort(rng.uniform(0.0, 10.0, n)) if trial % 2 else rng.uniform(-1.0, 11.0, n)  # sorted or not
        y = rng.normal(0.0, 1.0, n)
        n_bins = int(rng.integers(1, 40))
        width = [None, 0.05, 0.7][trial % 3]
        new = binning.bin_median(x, y, 0.0, 10.0, n_bins, bin_width=width)
        old = reference.bin_median(x, y, 0.0, 10.0, n_bins, bin_width=width)
        np.testing.assert_array_equal(new[1], old[1])
        np.testing.assert_allclose(new[0], old[0], rtol=1e-12, atol=1e-15)


def test_oot_window_avoids_a_transit_predicted_just_past_the_data():
    """The data end at 120 d; a transit predicted at 120.2 d (past the data) must still keep every out-of-transit
    window of 5 x 6 h clear of it. The loop implementation only masked transits reaching into the data."""
    cfg = make_cfg(oot_per_transit=40.0)
    cadence = tce_sample.CADENCE_DAYS
    time = 100.0 + np.arange(int(20.0 / cadence)) * cadence
    curve = Detrended(time=time, delta=np.zeros_like(time), cadence=cadence)
    spans = np.array([[time[0], time[-1]]])
    rows = [
        {"target_id": "7", "tce_plnt_num": "1", "tce_period": "4.0", "tce_time0bk": "102.0", "tce_duration": "6.0"},
        {"target_id": "7", "tce_plnt_num": "2", "tce_period": "50.0", "tce_time0bk": "120.2", "tce_duration": "2.0"},
    ]
    tces = [tce_table.parse_tce({**row, "label": "PC"}, cfg) for row in rows]
    edge = 120.2 - 0.5 * cfg.mask_width_factor * tces[1].duration_days  # where planet 2's masked transit starts
    assert edge > time[-1]

    def on_edge(examples):
        half = 0.5 * cfg.window_durations * tces[0].duration_days
        return [e for e in examples if e.row["kind"] == schema.KIND_OOT and e.tce_uid == tces[0].tce_uid
                and e.row["midtime"] + half >= edge]  # fmt: skip

    old, _ = reference.transit_windows(curve, tces, cfg, spans)
    new, _ = windows.transit_windows(curve, tces, cfg, spans)
    assert on_edge(old), "the loop implementation placed a window on the transit past the data"
    assert not on_edge(new)
    assert sum(e.row["kind"] == schema.KIND_OOT for e in new) > 0
