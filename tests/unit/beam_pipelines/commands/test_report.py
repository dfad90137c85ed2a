"""The dataset report: a self-contained page whose every image exists, with at least 6 figures per recipe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import report_fixture

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("report")


def page_images(index: Path) -> list[Path]:
    """Every image the page references, resolved relative to the page (no server, no absolute paths)."""
    text = index.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', text)
    assert all(not s.startswith(("/", "http:", "https:", "file:")) for s in sources), sources
    return [index.parent / s for s in sources]


def check_page(out: Path, minimum: int = 6) -> list[str]:
    index = out / "report" / "index.html"
    assert index.is_file(), "sigforge run writes the report by default"
    images = page_images(index)
    assert len(images) >= minimum, [p.name for p in images]
    for image in images:
        data = image.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, f"{image} is not a non-empty PNG"
    assert len({p.name for p in images}) == len(images), "figure names are unique"
    return [p.stem for p in images]


def test_g2net_page_has_overview_recipe_and_skew_figures(root):
    built = report_fixture.g2net(root)
    names = check_page(built.out)
    for name in ("splits", "g2net_avg_psd", "g2net_whitening_time", "g2net_whitening_freq"):
        assert name in names
    assert "g2net_value_histogram" in names and "g2net_truth" in names and "split_cdfs" in names
    text = (built.out / "report" / "index.html").read_text(encoding="utf-8")
    assert "no skew" in text and "snr_h1" in text  # the truth columns are compared across splits


def test_tce_transits_page(root):
    built = report_fixture.tce(root, "transits")
    names = check_page(built.out)
    for name in ("rejections", "tce_windows", "tce_mean_window", "tce_parameters", "tce_dispositions"):
        assert name in names
    assert "tce_value_histogram" in names and "split_cdfs" in names


def test_tce_views_page_shows_the_views(root):
    built = report_fixture.tce(root, "views")
    names = check_page(built.out)
    assert "tce_views" in names and "tce_windows" not in names


def test_report_command_writes_the_page_that_no_report_skipped(root):
    built = report_fixture.g2net(root)  # sigforge run --no-report, then sigforge report OUT
    index = built.out / "report" / "index.html"
    assert "report/index.html" not in built.stderr
    assert index.is_file() and str(index) in built.report_stderr
