"""Whole-table cases of the bad-input corpus: a labels CSV or TCE table that is empty, has a byte-order mark,
CRLF line ends, lacks a configured column, or has no data rows; a raw folder without light curves.

Each is handled: refused before any work (exit 2, one line naming the key, no output folder), or built with every
input written or rejected and a clean `sigforge audit` (whose recount of the raw inputs reads the same table).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil

import pytest

from beam_pipelines.commands import cli
from transforms.recipes.tce import sample as tce_sample

G2NET = "run_configs/g2net.yaml"
TCE = "run_configs/tce_kepler.yaml"


def _rejected(out):
    with open(out / "rejected" / "build.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _build(raw, out, config):
    return cli.main(["build", "--config", config, "--input", str(raw), "--output", str(out)])


@pytest.fixture(scope="module")
def tce_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("tables_tce") / "raw"
    tce_sample.write_tce_sample(str(raw), n_targets=2, seed=3, quarters=1, days_per_quarter=20.0)
    return raw


def _copy(raw, tmp_path):
    dest = tmp_path / "raw"
    shutil.copytree(raw, dest)
    return dest


REFUSED = {
    # name: (recipe, file, new content from the old bytes, key named in the message)
    "g2net labels CSV of 0 bytes": (G2NET, "training_labels.csv", lambda old: b"", "g2net.id_column"),
    "g2net labels CSV without its id column": (
        G2NET, "training_labels.csv", lambda old: old.replace(b"id,", b"ident,", 1), "g2net.id_column"),
    "g2net labels CSV with a header only": (
        G2NET, "training_labels.csv", lambda old: old.split(b"\n", 1)[0] + b"\n", "g2net.psd_labels"),
    "tce table of 0 bytes": (TCE, "tces.csv", lambda old: b"", "tce.columns"),
    "tce table without its period column": (
        TCE, "tces.csv", lambda old: old.replace(b"tce_period", b"period", 1), "tce.columns.period"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_table_refused_before_any_work(case, g2net_raw, tce_raw, tmp_path, caplog):
    config, name, change, key = REFUSED[case]
    raw = _copy(g2net_raw if config == G2NET else tce_raw, tmp_path)
    (raw / name).write_bytes(change((raw / name).read_bytes()))
    with caplog.at_level(logging.ERROR):
        assert _build(raw, tmp_path / "ds", config) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and key in errors[0].getMessage() and errors[0].exc_info is None
    assert not (tmp_path / "ds").exists()


def test_g2net_labels_with_bom_and_crlf_are_read_and_recounted(g2net_raw, tmp_path):
    """A labels CSV saved by a spreadsheet (UTF-8 BOM, CRLF): every sample written, and the audit's recount reads
    the label rows too (a row's id would otherwise be read under the column name '\\ufeffid')."""
    from beam_pipelines.dataset import fs
    from transforms.audit import audit_dataset
    from transforms.config import DatasetConfig, load_config
    from transforms.recipes.g2net.recipe import RECIPE

    raw = _copy(g2net_raw, tmp_path)
    labels = raw / "training_labels.csv"
    text = labels.read_bytes()
    labels.write_bytes(b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n"))
    out = tmp_path / "ds"
    assert _build(raw, out, G2NET) == 0
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    assert build["written"] == 48 and build["rejected"] == 0
    assert audit_dataset(str(out)) == []
    ids = RECIPE.input_ids(load_config(DatasetConfig, G2NET), str(raw), fs)
    assert len(ids) == 96  # 48 .npy files and 48 label rows


def test_tce_table_with_bom_and_crlf_is_read_and_recounted(tce_raw, tmp_path):
    raw = _copy(tce_raw, tmp_path)
    table = raw / "tces.csv"
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes().replace(b"\n", b"\r\n"))
    out = tmp_path / "ds"
    assert _build(raw, out, TCE) == 0
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    assert build["written"] > 0 and not [r for r in _rejected(out) if r["uid_or_path"].startswith("tce_csv:")]
    assert cli.main(["audit", str(out)]) == 0


def test_tce_table_without_rows_rejects_every_light_curve(tce_raw, tmp_path):
    raw = _copy(tce_raw, tmp_path)
    table = raw / "tces.csv"
    table.write_bytes(table.read_bytes().split(b"\n", 1)[0] + b"\n")
    out = tmp_path / "ds"
    assert _build(raw, out, TCE) == 2  # published, then refused: empty_build
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    n_files = len(list(raw.rglob("*.fits")))
    assert build["written"] == 0 and build["rejected_by_reason"] == {"light_curve_without_tce": n_files}
    assert cli.main(["audit", str(out)]) == 0


def test_tce_folder_without_light_curves_rejects_every_tce(tce_raw, tmp_path):
    raw = _copy(tce_raw, tmp_path)
    for path in raw.rglob("*.fits"):
        path.unlink()
    out = tmp_path / "ds"
    assert _build(raw, out, TCE) == 2  # published, then refused: empty_build
    build = json.loads((out / "manifest.json").read_text())["stages"]["build"]
    with open(raw / "tces.csv", newline="") as handle:
        n_tces = len(list(csv.DictReader(handle)))
    assert build["written"] == 0 and build["rejected_by_reason"] == {"tce_without_light_curve": n_tces}
    assert cli.main(["audit", str(out)]) == 0
