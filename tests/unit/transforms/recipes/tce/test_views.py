"""Mode "views" (transforms/recipes/tce/views.py): phase-folded global / local / odd-even views with the other
TCEs masked, on synthetic data and the real Kepler-90 quarter."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tce_fixture import load_kepler90, make_cfg, make_curve, make_row
from transforms.recipes.tce import sample as tce_sample
from transforms.recipes.tce import schema, target, tce_table


def test_views_fold_the_tce_and_mask_the_other_tces():
    cfg = make_cfg(mode="views")
    tces = [
        tce_table.parse_tce(make_row(period="3.0", epoch="100.5", duration="4.0"), cfg),
        tce_table.parse_tce(make_row(number="2", period="7.3", epoch="104.0", duration="6.0", label="AFP"), cfg),
    ]
    curve = make_curve([(3.0, 100.5, 4.0, 600.0), (7.3, 104.0, 6.0, 8000.0)], noise=50e-6)
    examples, drops = target.process_target("7", [curve], tces, cfg)
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
    cfg = make_cfg(mode="views")
    truth = tce_sample.InjectedTce("7", 1, 2.5, 101.0, 5.0, 10000.0, "AFP", "eb", odd_even_ratio=0.5)
    curve = make_curve([], noise=50e-6)
    flux = curve.flux * (1 - tce_sample.inject(curve.time, truth))
    curve = schema.LightCurve(curve.path, "7", curve.time, flux, curve.bjd_ref, curve.n_cadences)
    tce = tce_table.parse_tce(make_row(period="2.5", epoch="101.0", duration="5.0", label="AFP"), cfg)
    (example,), _ = target.process_target("7", [curve], [tce], cfg)
    even, odd = example.arrays["local_view_even"][15], example.arrays["local_view_odd"][15]
    assert even == pytest.approx(-10000e-6, rel=0.05) and odd == pytest.approx(-5000e-6, rel=0.05)


@pytest.fixture(scope="module")
def kepler90():
    """The real Kepler-90 quarter (cfg, curve, tces); skipped where the data are absent."""
    return load_kepler90()


def test_kepler90_views_mask_the_other_planets(kepler90):
    _, curve, tces = kepler90
    cfg = make_cfg(mode="views")
    examples, drops = target.process_target(curve.target_id, [curve], tces, cfg)
    info = {e.uid: e.row["n_transits"] for e in examples}
    # c's transit at 357.5 is inside g's masked transit, so only its 366.2 transit is left in its views.
    assert info == {"11442793-2": 1, "11442793-6": 3, "11442793-7": 1}
    assert len(drops) == 4
    c = next(e for e in examples if e.uid == "11442793-7")
    assert np.min(c.arrays["global_view"]) > -1500e-6  # no trace of g's 4164 ppm transit
