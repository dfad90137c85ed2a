"""Light-curve numerics (transforms/lightcurve.py): TCE parsing, FITS reading, detrending, binning, transit
windows and their target-level masks, phase-folded views, bad inputs, and the real Kepler-90 quarter."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from transforms.config import DatasetConfig, load_config, validate
from transforms.recipes.tce import lightcurve as lc
from transforms.recipes.tce import sample as tce_sample

KEPLER90 = Path(__file__).resolve().parent / "data" / "kepler90"  # copy of ../shared/data/kepler90
CADENCE = tce_sample.CADENCE_DAYS


def _cfg(**tce):
    return validate(DatasetConfig, {"recipe": "tce", "tce": tce}).tce


def _row(target="7", number="1", period="5.0", epoch="102.0", duration="6.0", label="PC"):
    return {
        "target_id": target,
        "tce_plnt_num": number,
        "tce_period": period,
        "tce_time0bk": epoch,
        "tce_duration": duration,
        "label": label,
    }


def _curve(tces, days=30.0, noise=50e-6, seed=0, start=100.0, target="7", variability=True, drop=None):
    """A cleaned synthetic LightCurve (relative flux ~1) with the trapezoid transits of ``tces`` injected.

    ``tces``: (period d, epoch d, duration h, depth ppm); ``drop``: (start, end) days of cadences removed.
    """
    rng = np.random.default_rng(seed)
    time = start + np.arange(int(days / CADENCE)) * CADENCE
    flux = 1.0 + (3e-3 * np.sin(2 * np.pi * time / 11.0) if variability else 0.0)
    for period, epoch, duration, depth in tces:
        flux = flux * (1 - tce_sample.periodic_transits(time, period, epoch, duration / 24, depth * 1e-6))
    flux = flux + rng.normal(0.0, noise, time.size)
    if drop is not None:
        keep = (time < drop[0]) | (time > drop[1])
        time, flux = time[keep], flux[keep]
    return lc.LightCurve(f"mem://{target}-{start}", target, time, flux, 2454833.0, time.size)


# ---- TCE table ---------------------------------------------------------------------------------------------------


def test_parse_tce_units_and_labels():
    cfg = _cfg()
    tce = lc.parse_tce(_row(target="011442793", number="2.0", duration="12.0", label="pc"), cfg)
    assert (tce.target_id, tce.tce_id, tce.tce_uid) == ("11442793", "2", "11442793-2")
    assert tce.duration_days == pytest.approx(0.5) and tce.period_days == 5.0 and tce.label == 1
    assert lc.parse_tce(_row(label="AFP"), cfg).label == 0
    assert lc.parse_tce(_row(label="1"), cfg).label == 1
    assert lc.parse_tce(_row(label="NTP"), _cfg(positive_labels=["NTP"])).label == 1


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"period": "0"}, lc.BAD_PERIOD),
        ({"period": "-3.2"}, lc.BAD_PERIOD),
        ({"period": "nan"}, lc.BAD_PERIOD),
        ({"period": ""}, lc.BAD_PERIOD),
        ({"epoch": "abc"}, lc.BAD_TCE),
        ({"duration": "0"}, lc.BAD_TCE),
        ({"duration": "240"}, lc.BAD_TCE),  # 10 days: longer than the 5-day period
        ({"target": " "}, lc.BAD_TCE),
    ],
)
def test_parse_tce_rejects_bad_rows(change, reason):
    with pytest.raises(lc.RejectedInput) as info:
        lc.parse_tce(_row(**change), _cfg())
    assert info.value.reason == reason


# ---- ephemerides, segments, binning ------------------------------------------------------------------------------


def test_transit_times_and_intervals_by_hand():
    np.testing.assert_allclose(lc.transit_times(5.0, 102.0, 100.0, 115.0), [102.0, 107.0, 112.0])
    np.testing.assert_allclose(lc.transit_times(5.0, 102.0, 102.0, 107.0), [102.0, 107.0])  # closed interval
    tce = lc.parse_tce(_row(duration="12"), _cfg())
    np.testing.assert_allclose(lc.transit_intervals([tce], 100.0, 108.0, 2.0), [[101.5, 102.5], [106.5, 107.5]])
    assert lc.overlaps_any(102.4, 103.0, np.array([[101.5, 102.5]]))
    assert not lc.overlaps_any(102.6, 103.0, np.array([[101.5, 102.5]]))


def test_split_segments_at_gaps():
    time = np.array([0.0, 0.1, 0.2, 1.0, 1.1, 5.0])
    assert lc.split_segments(time, 0.5) == [slice(0, 3), slice(3, 5), slice(5, 6)]


def test_bin_median_by_hand_and_empty_bins_interpolated():
    x = np.array([0.1, 0.2, 0.6, 2.5, 3.5, 3.6])
    y = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
    values, counts = lc.bin_median(x, y, 0.0, 4.0, 4)
    np.testing.assert_array_equal(counts, [3, 0, 1, 2])
    np.testing.assert_allclose(values, [3.0, 5.0, 7.0, 10.0])  # bin 1 interpolated between 0.5 and 2.5
    wide, wide_counts = lc.bin_median(x, y, 0.0, 4.0, 4, bin_width=2.0)  # overlapping bins
    np.testing.assert_array_equal(wide_counts, [3, 2, 2, 3])  # [-0.5, 1.5], [0.5, 2.5], [1.5, 3.5], [2.5, 4.5]
    np.testing.assert_allclose(wide, [3.0, 6.0, 8.0, 9.0])


def test_coverage_counts_present_cadences():
    time = np.arange(0, 10, 0.1)
    assert lc.coverage(time, 2.0, 3.0, 0.1) == pytest.approx(1.0)
    gappy = time[(time < 2.0) | (time > 2.6)]
    assert lc.coverage(gappy, 2.0, 3.0, 0.1) == pytest.approx(0.4, abs=0.05)


# ---- detrending --------------------------------------------------------------------------------------------------


def test_robust_spline_follows_variability_and_ignores_outliers():
    rng = np.random.default_rng(1)
    time = np.arange(0, 20, CADENCE)
    trend = 1 + 2e-3 * np.sin(2 * np.pi * time / 7.0) + 1e-4 * time
    flux = trend + rng.normal(0, 1e-4, time.size)
    outliers = rng.choice(time.size, 20, replace=False)
    flux[outliers] -= 5e-3  # clipped, not followed
    fitted = lc.robust_spline(time, flux, np.ones(time.size, bool), knot_spacing=1.5)
    assert np.max(np.abs(fitted - trend)) < 1e-4
    residual = np.delete(flux / fitted - 1, outliers)
    assert np.std(residual) < 1.05e-4 and abs(np.mean(residual)) < 1e-5


def test_detrend_masks_every_tce_so_the_depth_survives():
    cfg = _cfg()
    curve = _curve([(3.0, 101.0, 15.0, 250.0)], noise=100e-6)
    tce = lc.parse_tce(_row(period="3.0", epoch="101.0", duration="15.0"), cfg)
    masked = lc.detrend([curve], [tce], cfg)
    unmasked = lc.detrend([curve], [], cfg)
    mids = lc.transit_times(3.0, 101.0, 100.0, 130.0)
    distance = np.min(np.abs(masked.time[:, None] - mids[None, :]), axis=1)

    def depth(d):
        return -np.median(d.delta[distance < 0.25 * 15 / 24])

    assert depth(masked) == pytest.approx(250e-6, rel=0.1)
    assert depth(unmasked) < 0.8 * depth(masked)  # an unmasked 15-h transit is partly fitted away
    assert abs(np.median(masked.delta[distance > 1.0])) < 10e-6 and masked.cadence == pytest.approx(CADENCE)


# ---- mode "transits": placement, depth, masks, out-of-transit draws -----------------------------------------------


def test_windows_are_centred_on_the_transit_with_its_depth():
    cfg = _cfg()
    curve = _curve([(4.0, 101.3, 6.0, 1000.0)], noise=20e-6)
    tce = lc.parse_tce(_row(period="4.0", epoch="101.3", duration="6.0"), cfg)
    examples, drops = lc.process_target("7", [curve], [tce], cfg)
    transits = [e for e in examples if e.row["kind"] == "transit"]
    assert len(transits) == 8 and drops == []  # 101.3, 105.3, ..., 129.3 inside [100, 130)
    detrended = lc.detrend([curve], [tce], cfg)
    for example in transits:
        window = example.arrays[lc.FLUX_WINDOW]
        assert window.shape == (100,)
        assert example.uid == f"7-1_t_{example.row['midtime']:.4f}"
        # 5 durations in 100 bins: the flat bottom (80 % of the duration) spans bins 42..57.
        assert np.median(window[44:56]) == pytest.approx(-1000e-6, rel=0.05)
        assert abs(np.median(np.r_[window[:30], window[70:]])) < 20e-6
        assert abs(np.mean(np.flatnonzero(window < -500e-6)) - 49.5) <= 1.0
        offset = lc.box_centre_offset(detrended.time, detrended.delta, example.row["midtime"], 0.25, 0.25)
        assert abs(offset) * 24 < 0.35


def _masked_pair():
    """Positive TCE 1 (P 5 d, 4 h) and negative TCE 2 (P 7 d, 3 h) whose transit at 107.2 overlaps 107.0."""
    cfg = _cfg()
    tces = [
        lc.parse_tce(_row(period="5.0", epoch="102.0", duration="4.0", label="PC"), cfg),
        lc.parse_tce(_row(number="2", period="7.0", epoch="107.2", duration="3.0", label="NTP"), cfg),
    ]
    curve = _curve([(5.0, 102.0, 4.0, 800.0), (7.0, 107.2, 3.0, 500.0)], noise=30e-6)
    return cfg, tces, curve


def test_negative_windows_may_not_overlap_positive_transits():
    cfg, tces, curve = _masked_pair()
    examples, drops = lc.process_target("7", [curve], tces, cfg)
    positive = lc.transit_intervals(tces[:1], 90, 140, cfg.mask_width_factor)
    expected_dropped = []
    for mid in lc.transit_times(7.0, 107.2, curve.time[0], curve.time[-1]):
        half = 0.5 * cfg.window_durations * 3.0 / 24
        if lc.overlaps_any(mid - half, mid + half, positive):
            expected_dropped.append(f"7-2_t_{mid:.4f}")
    dropped = sorted(d.what for d in drops if d.reason == lc.OVERLAPS_POSITIVE)
    assert dropped == sorted(expected_dropped) and "7-2_t_107.2000" in dropped
    kept_negative = [e for e in examples if e.tce_uid == "7-2" and e.row["kind"] == "transit"]
    n_negative = len(lc.transit_times(7.0, 107.2, curve.time[0], curve.time[-1]))
    assert (
        n_negative == 5 and len(kept_negative) == n_negative - len(dropped) and all(e.label == 0 for e in kept_negative)
    )
    # The positive window at 107.0 is kept and records the overlapping negative transit.
    overlapped = next(e for e in examples if e.uid == "7-1_t_107.0000")
    assert overlapped.label == 1 and overlapped.row["n_overlapping_transits"] == 1


def test_out_of_transit_windows_avoid_every_transit_and_are_deterministic():
    cfg, tces, curve = _masked_pair()
    examples, _ = lc.process_target("7", [curve], tces, cfg)
    again, _ = lc.process_target("7", [curve], list(reversed(tces)), cfg)
    assert [e.uid for e in examples] == [e.uid for e in again]
    all_transits = lc.transit_intervals(tces, 90, 140, cfg.mask_width_factor)
    for tce in tces:
        transit = [e for e in examples if e.tce_uid == tce.tce_uid and e.row["kind"] == "transit"]
        oot = [e for e in examples if e.tce_uid == tce.tce_uid and e.row["kind"] == "oot"]
        assert len(oot) == len(transit) > 0 and all(e.label == 0 for e in oot)
        half = 0.5 * cfg.window_durations * tce.duration_days
        for e in oot:
            assert not lc.overlaps_any(e.row["midtime"] - half, e.row["midtime"] + half, all_transits)
            assert np.max(np.abs(e.arrays[lc.FLUX_WINDOW])) < 200e-6  # no dip in a negative window
    other_salt, _ = lc.process_target("7", [curve], tces, _cfg(oot_salt="other"))
    assert {e.uid for e in other_salt if e.row["kind"] == "oot"} != {e.uid for e in examples if e.row["kind"] == "oot"}


def test_two_positive_tces_with_overlapping_transits_both_keep_their_windows():
    cfg = _cfg()
    tces = [
        lc.parse_tce(_row(period="6.0", epoch="103.0", duration="5.0"), cfg),
        lc.parse_tce(_row(number="2", period="9.0", epoch="103.1", duration="3.0", label="CP"), cfg),
    ]
    curve = _curve([(6.0, 103.0, 5.0, 900.0), (9.0, 103.1, 3.0, 600.0)], noise=30e-6)
    examples, drops = lc.process_target("7", [curve], tces, cfg)
    uids = {e.uid for e in examples}
    assert {"7-1_t_103.0000", "7-2_t_103.1000"} <= uids
    assert not [d for d in drops if d.reason == lc.OVERLAPS_POSITIVE]
    both = [e for e in examples if e.uid in ("7-1_t_103.0000", "7-2_t_103.1000")]
    assert [e.row["n_overlapping_transits"] for e in both] == [1, 1]
    # The overlap deepens the shared transit: combined depth ~ 900 + 600 ppm at the centre of TCE 2's window.
    assert np.min(both[1].arrays[lc.FLUX_WINDOW]) < -1300e-6


# ---- mode "views" ------------------------------------------------------------------------------------------------


def test_views_fold_the_tce_and_mask_the_other_tces():
    cfg = _cfg(mode="views")
    tces = [
        lc.parse_tce(_row(period="3.0", epoch="100.5", duration="4.0"), cfg),
        lc.parse_tce(_row(number="2", period="7.3", epoch="104.0", duration="6.0", label="AFP"), cfg),
    ]
    curve = _curve([(3.0, 100.5, 4.0, 600.0), (7.3, 104.0, 6.0, 8000.0)], noise=50e-6)
    examples, drops = lc.process_target("7", [curve], tces, cfg)
    assert drops == [] and [e.uid for e in examples] == ["7-1", "7-2"]
    first = examples[0]
    assert {k: v.shape for k, v in first.arrays.items()} == {
        "global_view": (301,),
        "local_view": (31,),
        "local_view_odd": (31,),
        "local_view_even": (31,),
    }
    local, global_ = first.arrays["local_view"], first.arrays["global_view"]
    assert np.argmin(local) in (14, 15, 16) and local[15] == pytest.approx(-600e-6, rel=0.15)
    assert abs(np.mean(np.flatnonzero(global_ < -300e-6)) - 150) <= 1.0
    # TCE 2's 8000 ppm eclipses are masked out of TCE 1's views: nothing deeper than TCE 1's own transit.
    assert np.min(global_) > -900e-6
    # 10 transits in 100-130 d, but the one at 118.5 lies under TCE 2's eclipse at 118.6 and is masked.
    assert first.row["n_transits"] == first.row["n_odd"] + first.row["n_even"] == 9
    second = examples[1]
    assert second.label == 0 and np.min(second.arrays["local_view"]) < -7000e-6


def test_views_odd_even_show_an_eclipsing_binary():
    cfg = _cfg(mode="views")
    truth = tce_sample.InjectedTce("7", 1, 2.5, 101.0, 5.0, 10000.0, "AFP", "eb", odd_even_ratio=0.5)
    curve = _curve([], noise=50e-6)
    flux = curve.flux * (1 - tce_sample.inject(curve.time, truth))
    curve = lc.LightCurve(curve.path, "7", curve.time, flux, curve.bjd_ref, curve.n_cadences)
    tce = lc.parse_tce(_row(period="2.5", epoch="101.0", duration="5.0", label="AFP"), cfg)
    (example,), _ = lc.process_target("7", [curve], [tce], cfg)
    even, odd = example.arrays["local_view_even"][15], example.arrays["local_view_odd"][15]
    assert even == pytest.approx(-10000e-6, rel=0.05) and odd == pytest.approx(-5000e-6, rel=0.05)


# ---- FITS and bad inputs -----------------------------------------------------------------------------------------


def _fits_bytes(tmp_path, name="kplr000000042-q01_llc.fits", **kwargs) -> tuple[bytes, str]:
    time = 200.0 + np.arange(300) * CADENCE
    flux = np.full(300, 5000.0) + np.arange(300) * 0.01
    flux[10] = np.nan
    quality = np.zeros(300, np.int32)
    quality[[20, 21]] = [16, 128]
    path = str(tmp_path / name)
    tce_sample.write_kepler_fits(path, 42, time, flux, np.full(300, 2.0), quality, **kwargs)
    return Path(path).read_bytes(), path


def test_read_kepler_fits_cleans_and_normalizes(tmp_path):
    data, path = _fits_bytes(tmp_path)
    curve = lc.read_light_curve(data, path, _cfg())
    assert curve.target_id == "42" and curve.n_cadences == 300 and curve.time.size == 297
    assert curve.bjd_ref == 2454833.0 and curve.mission == "Kepler"
    assert np.median(curve.flux) == pytest.approx(1.0) and np.all(np.diff(curve.time) > 0)
    lenient = lc.read_light_curve(data, path, _cfg(quality_bitmask=128))
    assert lenient.time.size == 298  # the flag-16 cadence is kept, the NaN one never
    no_header, named = _fits_bytes(tmp_path, "kplr000000042-q02_llc.fits", header_id=False)
    assert lc.read_light_curve(no_header, named, _cfg(target_id_source="filename")).target_id == "42"


def test_bad_fits_files_are_rejected_with_their_reason(tmp_path):
    data, path = _fits_bytes(tmp_path)
    cases = [
        (data[: len(data) // 2], lc.UNREADABLE_FITS),
        (data[: 2880 * 3], lc.UNREADABLE_FITS),
        (b"SIMPLE  = garbage" * 200, lc.UNREADABLE_FITS),
        (b"", lc.UNREADABLE_FITS),
        (_fits_bytes(tmp_path, "b.fits", columns=("TIME", "SAP_FLUX", "SAP_QUALITY"))[0], lc.MISSING_COLUMNS),
        (_fits_bytes(tmp_path, "c.fits", header_id=False)[0], lc.NO_TARGET_ID),
    ]
    for payload, reason in cases:
        with pytest.raises(lc.RejectedInput) as info:
            lc.read_light_curve(payload, path, _cfg())
        assert info.value.reason == reason, info.value


def test_target_level_bad_inputs():
    cfg = _cfg()
    tce = lc.parse_tce(_row(period="4.0", epoch="101.3"), cfg)
    curve = _curve([(4.0, 101.3, 6.0, 1000.0)], drop=(109.0, 109.7))  # the transit at 109.3 falls in a gap
    examples, drops = lc.process_target("7", [curve], [tce, tce], cfg)
    reasons = {(d.what, d.reason) for d in drops}
    assert reasons == {("7-1", lc.DUPLICATE_TCE), ("7-1_t_109.3000", lc.TRANSIT_IN_GAP)}
    assert len([e for e in examples if e.row["kind"] == "transit"]) == 7
    assert lc.process_target("7", [], [tce], cfg) == (
        [],
        [lc.Drop("7-1", lc.TCE_WITHOUT_LIGHT_CURVE, "no readable light curve for target 7")],
    )
    _, no_tce = lc.process_target("7", [curve], [], cfg)
    assert [(d.what, d.reason) for d in no_tce] == [(curve.path, lc.LIGHT_CURVE_WITHOUT_TCE)]
    late = lc.parse_tce(_row(number="3", period="400", epoch="950"), cfg)
    _, far = lc.process_target("7", [curve], [late], cfg)
    assert [(d.what, d.reason) for d in far] == [("7-3", lc.NO_TRANSIT_OBSERVED)]


def test_transits_between_files_are_not_observed_but_gaps_inside_are():
    cfg = _cfg()
    tce = lc.parse_tce(_row(period="4.0", epoch="101.3"), cfg)
    first = _curve([(4.0, 101.3, 6.0, 1000.0)], days=10.0)
    second = _curve([(4.0, 101.3, 6.0, 1000.0)], days=10.0, start=300.0, seed=1)
    examples, drops = lc.process_target("7", [second, first], [tce], cfg)
    mids = sorted(e.row["midtime"] for e in examples if e.row["kind"] == "transit")
    assert mids == pytest.approx([101.3, 105.3, 109.3, 301.3, 305.3, 309.3]) and drops == []


def test_bjd_epochs_are_converted_with_the_header_reference():
    cfg = _cfg(epoch_reference="bjd")
    tce = lc.parse_tce(_row(period="4.0", epoch=str(2454833.0 + 101.3)), cfg)
    examples, _ = lc.process_target("7", [_curve([(4.0, 101.3, 6.0, 1000.0)])], [tce], cfg)
    assert examples[0].row["midtime"] == pytest.approx(101.3)


# ---- the real Kepler-90 quarter ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kepler90():
    if not KEPLER90.is_dir():
        pytest.skip(f"real Kepler-90 fixture {KEPLER90} not present")
    cfg = _cfg()
    path = next(KEPLER90.glob("*.fits"))
    curve = lc.read_light_curve(path.read_bytes(), str(path), cfg)
    with open(next(KEPLER90.glob("*.csv")), newline="") as handle:
        tces = [lc.parse_tce(row, cfg) for row in csv.DictReader(handle)]
    return cfg, curve, tces


def test_kepler90_windows_sit_on_the_catalogue_transits(kepler90):
    cfg, curve, tces = kepler90
    assert curve.target_id == "11442793" and curve.time.size > 900
    examples, drops = lc.process_target(curve.target_id, [curve], tces, cfg)
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
    detrended = lc.detrend([curve], tces, cfg)
    g = next(e for e in transits if e.tce_uid == "11442793-2")
    offset_h = 24 * lc.box_centre_offset(detrended.time, detrended.delta, g.row["midtime"], 0.5025, 0.5)
    assert -4.5 < offset_h < -2.5
    assert np.min(g.arrays[lc.FLUX_WINDOW]) < -3000e-6
    # c's transit at 357.516 lies inside g's: its window says so; the masks keep every negative window clear.
    c_first = next(e for e in transits if e.uid == "11442793-7_t_357.5160")
    assert c_first.row["n_overlapping_transits"] == 1
    every_transit = lc.transit_intervals(tces, 350, 375, cfg.mask_width_factor)
    oot = [e for e in examples if e.row["kind"] == "oot"]
    assert len(oot) == len(transits) == 6
    for e in oot:
        half = 0.5 * cfg.window_durations * by_uid[e.tce_uid].duration_days
        assert not lc.overlaps_any(e.row["midtime"] - half, e.row["midtime"] + half, every_transit)


def test_kepler90_views_mask_the_other_planets(kepler90):
    _, curve, tces = kepler90
    cfg = _cfg(mode="views")
    examples, drops = lc.process_target(curve.target_id, [curve], tces, cfg)
    info = {e.uid: e.row["n_transits"] for e in examples}
    # c's transit at 357.5 is inside g's masked transit, so only its 366.2 transit is left in its views.
    assert info == {"11442793-2": 1, "11442793-6": 3, "11442793-7": 1}
    assert len(drops) == 4
    c = next(e for e in examples if e.uid == "11442793-7")
    assert np.min(c.arrays["global_view"]) > -1500e-6  # no trace of g's 4164 ppm transit


def test_tess_spoc_light_curve_with_the_tess_recipe(tmp_path):
    from astropy.io import fits

    cfg = load_config(DatasetConfig, str(Path(__file__).resolve().parents[1] / "run_configs" / "tce_tess.yaml")).tce
    time = 1400.0 + np.arange(int(6.0 / (2 / 1440))) * (2 / 1440)  # 2-min cadence, BTJD
    flux = 2e4 * (1 - tce_sample.periodic_transits(time, 2.0, 1401.0, 3 / 24, 2e-3, exposure=2 / 1440))
    quality = np.where(np.arange(time.size) % 500 == 0, 512, 0)
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"], primary.header["TICID"] = "TESS", 25155310
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", unit="BJD - 2457000, days", array=time),
            fits.Column(name="PDCSAP_FLUX", format="E", unit="e-/s", array=flux),
            fits.Column(name="PDCSAP_FLUX_ERR", format="E", unit="e-/s", array=np.full(time.size, 5.0)),
            fits.Column(name="QUALITY", format="J", array=quality),
        ],
        name="LIGHTCURVE",
    )
    table.header["BJDREFI"], table.header["BJDREFF"] = 2457000, 0.0
    path = tmp_path / "tess2019006130736-s0007-0000000025155310-0131-s_lc.fits"
    fits.HDUList([primary, table]).writeto(path)
    curve = lc.read_light_curve(path.read_bytes(), str(path), cfg)
    assert curve.target_id == "25155310" and curve.bjd_ref == 2457000.0
    assert curve.time.size == time.size - np.count_nonzero(quality)
    row = {"tic_id": "25155310", "tce_plnt_num": "1", "tce_period": "2.0", "tce_time0bt": "1401.0",
           "tce_duration": "3.0", "disposition": "KP"}  # fmt: skip
    examples, drops = lc.process_target(curve.target_id, [curve], [lc.parse_tce(row, cfg)], cfg)
    transits = [e for e in examples if e.row["kind"] == "transit"]
    assert [e.row["midtime"] for e in transits] == [1401.0, 1403.0, 1405.0] and drops == []
    for e in transits:
        assert e.label == 1 and np.median(e.arrays[lc.FLUX_WINDOW][46:54]) == pytest.approx(-2e-3, rel=0.02)
