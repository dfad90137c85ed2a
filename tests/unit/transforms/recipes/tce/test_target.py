"""One target (transforms/recipes/tce/target.py): duplicates, TCEs / light curves without a partner, transits
between files or in gaps, and BJD epochs."""

from __future__ import annotations

import pytest

from tests.support.tce_fixture import make_cfg, make_curve, make_row
from transforms.recipes.tce import schema, target, tce_table


def test_target_level_bad_inputs():
    cfg = make_cfg()
    tce = tce_table.parse_tce(make_row(period="4.0", epoch="101.3"), cfg)
    curve = make_curve([(4.0, 101.3, 6.0, 1000.0)], drop=(109.0, 109.7))  # the transit at 109.3 falls in a gap
    examples, drops = target.process_target("7", [curve], [tce, tce], cfg)
    reasons = {(d.what, d.reason) for d in drops}
    assert reasons == {("7-1", schema.DUPLICATE_TCE), ("7-1_t_109.3000", schema.TRANSIT_IN_GAP)}
    assert len([e for e in examples if e.row["kind"] == "transit"]) == 7
    assert target.process_target("7", [], [tce], cfg) == (
        [],
        [schema.Drop("7-1", schema.TCE_WITHOUT_LIGHT_CURVE, "no readable light curve for target 7")],
    )
    _, no_tce = target.process_target("7", [curve], [], cfg)
    assert [(d.what, d.reason) for d in no_tce] == [(curve.path, schema.LIGHT_CURVE_WITHOUT_TCE)]
    late = tce_table.parse_tce(make_row(number="3", period="400", epoch="950"), cfg)
    _, far = target.process_target("7", [curve], [late], cfg)
    assert [(d.what, d.reason) for d in far] == [("7-3", schema.NO_TRANSIT_OBSERVED)]


def test_transits_between_files_are_not_observed_but_gaps_inside_are():
    cfg = make_cfg()
    tce = tce_table.parse_tce(make_row(period="4.0", epoch="101.3"), cfg)
    first = make_curve([(4.0, 101.3, 6.0, 1000.0)], days=10.0)
    second = make_curve([(4.0, 101.3, 6.0, 1000.0)], days=10.0, start=300.0, seed=1)
    examples, drops = target.process_target("7", [second, first], [tce], cfg)
    mids = sorted(e.row["midtime"] for e in examples if e.row["kind"] == "transit")
    assert mids == pytest.approx([101.3, 105.3, 109.3, 301.3, 305.3, 309.3]) and drops == []


def test_bjd_epochs_are_converted_with_the_header_reference():
    cfg = make_cfg(epoch_reference="bjd")
    tce = tce_table.parse_tce(make_row(period="4.0", epoch=str(2454833.0 + 101.3)), cfg)
    examples, _ = target.process_target("7", [make_curve([(4.0, 101.3, 6.0, 1000.0)])], [tce], cfg)
    assert examples[0].row["midtime"] == pytest.approx(101.3)


@pytest.mark.parametrize("mode", ["transits", "views"])
def test_a_transit_shorter_than_the_cadence_is_dropped_and_still_masked(mode):
    """A 6-minute TCE on a 30-minute light curve cannot be resolved: dropped with its reason in both modes, while
    the star's other TCE is still written."""
    cfg = make_cfg(mode=mode)
    good = tce_table.parse_tce(make_row(period="4.0", epoch="101.3"), cfg)
    short = tce_table.parse_tce(make_row(number="2", period="1.7", epoch="100.2", duration="0.1"), cfg)
    curve = make_curve([(4.0, 101.3, 6.0, 1000.0)])
    examples, drops = target.process_target("7", [curve], [good, short], cfg)
    assert [(d.what, d.reason) for d in drops] == [("7-2", schema.UNRESOLVED_TRANSIT)]
    assert examples and {e.tce_uid for e in examples} == {"7-1"}
