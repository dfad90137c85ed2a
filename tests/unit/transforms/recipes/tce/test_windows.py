"""Mode "transits" (transforms/recipes/tce/windows.py): binning, coverage, window placement and depth, the
target-level masks, out-of-transit draws, and the windows of the real Kepler-90 quarter."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tce_fixture import box_centre_offset, load_kepler90, make_cfg, make_curve, make_row
from transforms.recipes.tce import binning, detrend, ephemeris, schema, target, tce_table


def test_bin_median_by_hand_and_empty_bins_interpolated():
    x = np.array([0.1, 0.2, 0.6, 2.5, 3.5, 3.6])
    y = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
    values, counts = binning.bin_median(x, y, 0.0, 4.0, 4)
    np.testing.assert_array_equal(counts, [3, 0, 1, 2])
    np.testing.assert_allclose(values, [3.0, 5.0, 7.0, 10.0])  # bin 1 interpolated between 0.5 and 2.5
    wide, wide_counts = binning.bin_median(x, y, 0.0, 4.0, 4, bin_width=2.0)  # overlapping bins
    np.testing.assert_array_equal(wide_counts, [3, 2, 2, 3])  # [-0.5, 1.5], [0.5, 2.5], [1.5, 3.5], [2.5, 4.5]
    np.testing.assert_allclose(wide, [3.0, 6.0, 8.0, 9.0])


def test_coverage_counts_present_cadences():
    time = np.arange(0, 10, 0.1)
    assert binning.coverage(time, 2.0, 3.0, 0.1) == pytest.approx(1.0)
    gappy = time[(time < 2.0) | (time > 2.6)]
    assert binning.coverage(gappy, 2.0, 3.0, 0.1) == pytest.approx(0.4, abs=0.05)


# ---- mode "transits": placement, depth, masks, out-of-transit draws -----------------------------------------------


def test_windows_are_centred_on_the_transit_with_its_depth():
    cfg = make_cfg()
    curve = make_curve([(4.0, 101.3, 6.0, 1000.0)], noise=20e-6)
    tce = tce_table.parse_tce(make_row(period="4.0", epoch="101.3", duration="6.0"), cfg)
    examples, drops = target.process_target("7", [curve], [tce], cfg)
    transits = [e for e in examples if e.row["kind"] == "transit"]
    assert len(transits) == 8 and drops == []  # 101.3, 105.3, ..., 129.3 inside [100, 130)
    detrended = detrend.detrend([curve], [tce], cfg)
    for example in transits:
        window = example.arrays[schema.FLUX_WINDOW]
        assert window.shape == (100,)
        assert example.uid == f"7-1_t_{example.row['midtime']:.4f}"
        # 5 durations in 100 bins: the flat bottom (80 % of the duration) spans bins 42..57.
        assert np.median(window[44:56]) == pytest.approx(-1000e-6, rel=0.05)
        assert abs(np.median(np.r_[window[:30], window[70:]])) < 20e-6
        assert abs(np.mean(np.flatnonzero(window < -500e-6)) - 49.5) <= 1.0
        offset = box_centre_offset(detrended.time, detrended.delta, example.row["midtime"], 0.25, 0.25)
        assert abs(offset) * 24 < 0.35


def _masked_pair():
    """Positive TCE 1 (P 5 d, 4 h) and negative TCE 2 (P 7 d, 3 h) whose transit at 107.2 overlaps 107.0."""
    cfg = make_cfg()
    tces = [
        tce_table.parse_tce(make_row(period="5.0", epoch="102.0", duration="4.0", label="PC"), cfg),
        tce_table.parse_tce(make_row(number="2", period="7.0", epoch="107.2", duration="3.0", label="NTP"), cfg),
    ]
    curve = make_curve([(5.0, 102.0, 4.0, 800.0), (7.0, 107.2, 3.0, 500.0)], noise=30e-6)
    return cfg, tces, curve


def test_negative_windows_may_not_overlap_positive_transits():
    cfg, tces, curve = _masked_pair()
    examples, drops = target.process_target("7", [curve], tces, cfg)
    positive = ephemeris.transit_intervals(tces[:1], 90, 140, cfg.mask_width_factor)
    expected_dropped = []
    for mid in ephemeris.transit_times(7.0, 107.2, curve.time[0], curve.time[-1]):
        half = 0.5 * cfg.window_durations * 3.0 / 24
        if ephemeris.overlaps_any(mid - half, mid + half, positive):
            expected_dropped.append(f"7-2_t_{mid:.4f}")
    dropped = sorted(d.what for d in drops if d.reason == schema.OVERLAPS_POSITIVE)
    assert dropped == sorted(expected_dropped) and "7-2_t_107.2000" in dropped
    kept_negative = [e for e in examples if e.tce_uid == "7-2" and e.row["kind"] == "transit"]
    n_negative = len(ephemeris.transit_times(7.0, 107.2, curve.time[0], curve.time[-1]))
    assert (
        n_negative == 5 and len(kept_negative) == n_negative - len(dropped) and all(e.label == 0 for e in kept_negative)
    )
    # The positive window at 107.0 is kept and records the overlapping negative transit.
    overlapped = next(e for e in examples if e.uid == "7-1_t_107.0000")
    assert overlapped.label == 1 and overlapped.row["n_overlapping_transits"] == 1


def test_out_of_transit_windows_avoid_every_transit_and_are_deterministic():
    cfg, tces, curve = _masked_pair()
    examples, _ = target.process_target("7", [curve], tces, cfg)
    again, _ = target.process_target("7", [curve], list(reversed(tces)), cfg)
    assert [e.uid for e in examples] == [e.uid for e in again]
    all_transits = ephemeris.transit_intervals(tces, 90, 140, cfg.mask_width_factor)
    for tce in tces:
        transit = [e for e in examples if e.tce_uid == tce.tce_uid and e.row["kind"] == "transit"]
        oot = [e for e in examples if e.tce_uid == tce.tce_uid and e.row["kind"] == "oot"]
        assert len(oot) == len(transit) > 0 and all(e.label == 0 for e in oot)
        half = 0.5 * cfg.window_durations * tce.duration_days
        for e in oot:
            assert not ephemeris.overlaps_any(e.row["midtime"] - half, e.row["midtime"] + half, all_transits)
            assert np.max(np.abs(e.arrays[schema.FLUX_WINDOW])) < 200e-6  # no dip in a negative window
    other_salt, _ = target.process_target("7", [curve], tces, make_cfg(oot_salt="other"))
    assert {e.uid for e in other_salt if e.row["kind"] == "oot"} != {e.uid for e in examples if e.row["kind"] == "oot"}


def test_two_positive_tces_with_overlapping_transits_both_keep_their_windows():
    cfg = make_cfg()
    tces = [
        tce_table.parse_tce(make_row(period="6.0", epoch="103.0", duration="5.0"), cfg),
        tce_table.parse_tce(make_row(number="2", period="9.0", epoch="103.1", duration="3.0", label="CP"), cfg),
    ]
    curve = make_curve([(6.0, 103.0, 5.0, 900.0), (9.0, 103.1, 3.0, 600.0)], noise=30e-6)
    examples, drops = target.process_target("7", [curve], tces, cfg)
    uids = {e.uid for e in examples}
    assert {"7-1_t_103.0000", "7-2_t_103.1000"} <= uids
    assert not [d for d in drops if d.reason == schema.OVERLAPS_POSITIVE]
    both = [e for e in examples if e.uid in ("7-1_t_103.0000", "7-2_t_103.1000")]
    assert [e.row["n_overlapping_transits"] for e in both] == [1, 1]
    # The overlap deepens the shared transit: combined depth ~ 900 + 600 ppm at the centre of TCE 2's window.
    assert np.min(both[1].arrays[schema.FLUX_WINDOW]) < -1300e-6


@pytest.fixture(scope="module")
def kepler90():
    """The real Kepler-90 quarter (cfg, curve, tces); skipped where the data are absent."""
    return load_kepler90()


def test_kepler90_windows_sit_on_the_catalogue_transits(kepler90):
    cfg, curve, tces = kepler90
    assert curve.target_id == "11442793" and curve.time.size > 900
    examples, drops = target.process_target(curve.target_id, [curve], tces, cfg)
    transits = [e for e in examples if e.row["kind"] == "transit"]
    per_tce = {t.tce_uid: sum(e.tce_uid == t.tce_uid for e in transits) for t in tces}
    # In BKJD 352.4-373.2: b (P 7.0 d) 3 transits, c (8.7 d) 2, g (210.6 d) 1; h, d, e, f none.
    assert per_tce == {
        "11442793-1": 0,
        "11442793-2": 1,
        "11442793-3": 0,
        "11442793-4": 0,
        "11442793-5": 0,
        "11442793-6": 3,
        "11442793-7": 2,
    }
    assert sorted(d.what for d in drops) == [f"11442793-{n}" for n in (1, 3, 4, 5)]
    by_uid = {t.tce_uid: t for t in tces}
    for e in transits:
        tce = by_uid[e.tce_uid]
        n = round((e.row["midtime"] - tce.epoch) / tce.period_days)
        assert e.row["midtime"] == pytest.approx(tce.epoch + n * tce.period_days, abs=1e-6)
    # Kepler-90 g (4164 ppm, 12 h): its dip is inside its window, within its TTV (~3.6 h early in Q4).
    detrended = detrend.detrend([curve], tces, cfg)
    g = next(e for e in transits if e.tce_uid == "11442793-2")
    offset_h = 24 * box_centre_offset(detrended.time, detrended.delta, g.row["midtime"], 0.5025, 0.5)
    assert -4.5 < offset_h < -2.5
    assert np.min(g.arrays[schema.FLUX_WINDOW]) < -3000e-6
    # c's transit at 357.516 lies inside g's: its window says so; the masks keep every negative window clear.
    c_first = next(e for e in transits if e.uid == "11442793-7_t_357.5160")
    assert c_first.row["n_overlapping_transits"] == 1
    every_transit = ephemeris.transit_intervals(tces, 350, 375, cfg.mask_width_factor)
    oot = [e for e in examples if e.row["kind"] == "oot"]
    assert len(oot) == len(transits) == 6
    for e in oot:
        half = 0.5 * cfg.window_durations * by_uid[e.tce_uid].duration_days
        assert not ephemeris.overlaps_any(e.row["midtime"] - half, e.row["midtime"] + half, every_transit)
