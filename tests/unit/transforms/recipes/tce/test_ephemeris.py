"""Transit ephemerides and interval masks (transforms/recipes/tce/ephemeris.py), checked by hand."""

from __future__ import annotations

import numpy as np

from tests.support.tce_fixture import make_cfg, make_row
from transforms.recipes.tce import ephemeris, tce_table


def test_transit_times_and_intervals_by_hand():
    np.testing.assert_allclose(ephemeris.transit_times(5.0, 102.0, 100.0, 115.0), [102.0, 107.0, 112.0])
    np.testing.assert_allclose(ephemeris.transit_times(5.0, 102.0, 102.0, 107.0), [102.0, 107.0])  # closed interval
    tce = tce_table.parse_tce(make_row(duration="12"), make_cfg())
    np.testing.assert_allclose(ephemeris.transit_intervals([tce], 100.0, 108.0, 2.0), [[101.5, 102.5], [106.5, 107.5]])
    assert ephemeris.overlaps_any(102.4, 103.0, np.array([[101.5, 102.5]]))
    assert not ephemeris.overlaps_any(102.6, 103.0, np.array([[101.5, 102.5]]))
