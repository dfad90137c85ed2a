"""TCE-table rows (transforms/recipes/tce/tce_table.py): ids, units, labels, rejected rows."""

from __future__ import annotations

import pytest

from tests.support.tce_fixture import make_cfg, make_row
from transforms.contract import RejectedInput
from transforms.recipes.tce import schema, tce_table


def test_parse_tce_units_and_labels():
    cfg = make_cfg()
    tce = tce_table.parse_tce(make_row(target="011442793", number="2.0", duration="12.0", label="pc"), cfg)
    assert (tce.target_id, tce.tce_id, tce.tce_uid) == ("11442793", "2", "11442793-2")
    assert tce.duration_days == pytest.approx(0.5) and tce.period_days == 5.0 and tce.label == 1
    assert tce_table.parse_tce(make_row(label="AFP"), cfg).label == 0
    assert tce_table.parse_tce(make_row(label="1"), cfg).label == 1
    assert tce_table.parse_tce(make_row(label="NTP"), make_cfg(positive_labels=["NTP"])).label == 1


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"period": "0"}, schema.BAD_PERIOD),
        ({"period": "-3.2"}, schema.BAD_PERIOD),
        ({"period": "nan"}, schema.BAD_PERIOD),
        ({"period": ""}, schema.BAD_PERIOD),
        ({"epoch": "abc"}, schema.BAD_TCE),
        ({"duration": "0"}, schema.BAD_TCE),
        ({"duration": "240"}, schema.BAD_TCE),  # 10 days: longer than the 5-day period
        ({"target": " "}, schema.BAD_TCE),
    ],
)
def test_parse_tce_rejects_bad_rows(change, reason):
    with pytest.raises(RejectedInput) as info:
        tce_table.parse_tce(make_row(**change), make_cfg())
    assert info.value.reason == reason
