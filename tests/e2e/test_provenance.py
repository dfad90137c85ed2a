"""Provenance (transforms/provenance.py): every data-table row names its raw file and that file's sha256 (light
curves also the FITS rows of each window); the build records its input set (``provenance/inputs.csv`` and the
manifest's ``inputs`` digest) and every stage the sha256 of each file it publishes (``fingerprints``).
``sigforge audit --inputs`` names every raw file changed, added or removed since the build; ``sigforge audit``
names every published file edited, deleted or added."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from beam_pipelines.commands import cli
from beam_pipelines.dataset import fs
from transforms import audit_provenance, provenance
from transforms.config import DatasetConfig, load_config
from transforms.contract import decode_array, decode_example, sample_id
from transforms.recipes.tce import binning, fits_io, target, tce_table
from transforms.recipes.tce import sample as tce_sample
from transforms.tfrecord import read_record

REPO = Path(__file__).resolve().parents[2]
G2NET_CONFIG = str(REPO / "run_configs" / "demo.yaml")
TCE_CONFIG = str(REPO / "run_configs" / "tce_kepler.yaml")
SOURCE = ("source_path", "source_sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(folder: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(folder.glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _build(config: str, raw: Path, out: Path, *stages: str) -> None:
    assert cli.main(["build", "--config", config, "--input", str(raw), "--output", str(out)]) == 0
    for stage in stages:
        assert cli.main([stage, "--config", config, "--output", str(out)]) == 0


def _copy(raw: Path, out: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Copies of a raw folder and of a dataset built from it, the copy's manifest pointing at the raw copy."""
    raw_copy, out_copy = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(raw, raw_copy)
    shutil.copytree(out, out_copy)
    data = _manifest(out_copy)
    data["stages"]["build"]["input_dir"] = str(raw_copy)
    (out_copy / "manifest.json").write_text(json.dumps(data))
    return raw_copy, out_copy


@pytest.fixture(scope="module")
def g2net(tmp_path_factory, g2net_raw):
    """(raw, out): the demo config's build and split of the session's 48-sample G2Net folder."""
    base = tmp_path_factory.mktemp("provenance_g2net")
    raw = base / "raw"
    shutil.copytree(g2net_raw, raw)
    _build(G2NET_CONFIG, raw, base / "out", "split")
    return raw, base / "out"


# ---- per-example provenance --------------------------------------------------------------------------------------


def test_every_row_names_its_raw_file_and_digest(g2net):
    raw, out = g2net
    rows = _rows(out / "tfrecords")
    assert rows and all(column in rows[0] for column in SOURCE)
    for row in rows:
        path = raw / row["source_path"]
        assert path.is_file() and sample_id(row["source_path"]) == row["uid"]
        assert row["source_sha256"] == _sha256(path)


def test_the_source_columns_flow_through_the_split_unchanged(g2net):
    _, out = g2net
    built = {row["uid"]: [row[c] for c in SOURCE] for row in _rows(out / "tfrecords")}
    split = {row["uid"]: [row[c] for c in SOURCE] for s in ("train", "val", "test") for row in _rows(out / "split" / s)}
    assert split == built


def test_the_input_set_lists_every_file_read_once(g2net):
    raw, out = g2net
    listed = provenance.parse_inputs((out / "provenance" / "inputs.csv").read_text())
    expected = {str(p.relative_to(raw)) for p in raw.rglob("*.npy")} | {"training_labels.csv", "injections.csv"}
    assert set(listed) == expected
    for path, digest in listed.items():
        assert digest.sha256 == _sha256(raw / path) and digest.bytes == (raw / path).stat().st_size
    listing = "".join(f"{listed[p].sha256}  {p}\n" for p in sorted(listed)).encode()
    recorded = _manifest(out)["inputs"]
    assert recorded == {
        "digest": hashlib.sha256(listing).hexdigest(),
        "files": len(expected),
        "bytes": sum((raw / p).stat().st_size for p in expected),
    }


# ---- the input set against the raw folder ------------------------------------------------------------------------


def test_audit_inputs_names_each_changed_added_and_vanished_raw_file(g2net, tmp_path):
    raw, out = _copy(*g2net, tmp_path)
    assert audit_provenance.check_inputs(fs, str(out), _manifest(out)) == []
    assert cli.main(["audit", str(out), "--inputs"]) == 0
    npys = sorted(raw.rglob("*.npy"))
    changed, vanished = npys[3], npys[7]
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0x01  # one bit of one byte of the last sample
    changed.write_bytes(bytes(data))
    vanished.unlink()
    added = raw / "zz_added.csv"
    added.write_text("not an input\n")  # matches no pattern: not an input
    appeared = npys[0].with_name("00000added.npy")
    shutil.copy(npys[0], appeared)
    problems = audit_provenance.check_inputs(fs, str(out), _manifest(out))
    name = lambda path: str(path.relative_to(raw))  # noqa: E731
    assert len(problems) == 3, problems
    assert f"inputs: {name(changed)} changed since the build" in problems[0]
    assert f"inputs: {name(appeared)} appeared under" in problems[1]
    assert f"inputs: {name(vanished)} vanished from" in problems[2]
    assert cli.main(["audit", str(out), "--inputs"]) != 0


def test_audit_inputs_finds_a_changed_labels_csv_and_an_edited_record(g2net, tmp_path):
    raw, out = _copy(*g2net, tmp_path)
    with open(raw / "training_labels.csv", "a") as handle:
        handle.write("\n")
    problems = audit_provenance.check_inputs(fs, str(out), _manifest(out))
    assert len(problems) == 1 and "training_labels.csv changed since the build" in problems[0]
    inputs_csv = out / "provenance" / "inputs.csv"
    inputs_csv.write_text(inputs_csv.read_text().replace("training_labels.csv", "training_labels.csv.bak"))
    problems = audit_provenance.check_inputs(fs, str(out), _manifest(out))
    assert any("does not match the manifest's 'inputs' digest" in p for p in problems), problems


# ---- published files against their fingerprints ------------------------------------------------------------------


def test_every_published_file_is_fingerprinted(g2net):
    _, out = g2net
    published = {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and p.name != "manifest.json" and not str(p.relative_to(out)).startswith(("report", "."))
    }
    fingerprints = _manifest(out)["fingerprints"]
    assert set(fingerprints) == published
    assert all(fingerprints[rel] == _sha256(out / rel) for rel in published)
    assert audit_provenance.check_fingerprints(fs, str(out), _manifest(out)) == []


@pytest.mark.parametrize("damage", ["delete", "edit", "add"])
def test_audit_names_a_published_file_edited_deleted_or_added(g2net, tmp_path, damage):
    _, out = _copy(*g2net, tmp_path)
    shard = sorted((out / "split" / "train").glob("*.tfrecord"))[0]
    relative = str(shard.relative_to(out))
    if damage == "delete":
        shard.unlink()
    elif damage == "edit":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
    else:
        relative = "tfrecords/notes.txt"
        (out / relative).write_text("added\n")
    problems = audit_provenance.check_fingerprints(fs, str(out), _manifest(out))
    expected = {"delete": "was deleted after the split stage", "edit": "was edited after the split stage"}
    expected["add"] = "was added to tfrecords/ after the build stage"
    assert problems and all(relative in p for p in problems) and expected[damage] in problems[0], problems
    assert cli.main(["audit", str(out)]) != 0


def test_a_rerun_publishes_byte_identical_files(g2net, tmp_path):
    raw, out = g2net
    _build(G2NET_CONFIG, raw, tmp_path / "again", "split")
    assert _manifest(tmp_path / "again")["fingerprints"] == _manifest(out)["fingerprints"]
    assert _manifest(tmp_path / "again")["inputs"] == _manifest(out)["inputs"]


def test_overwrite_drops_the_replaced_stages_fingerprints(g2net, tmp_path):
    raw, out = _copy(*g2net, tmp_path)
    before = _manifest(out)["fingerprints"]
    assert cli.main(["split", "--config", G2NET_CONFIG, "--output", str(out), "--overwrite"]) == 0
    assert _manifest(out)["fingerprints"] == before
    data = _manifest(out)
    data["fingerprints"]["split/ghost.tfrecord"] = "0" * 64  # a stale entry: replaced with the split stage
    (out / "manifest.json").write_text(json.dumps(data))
    assert cli.main(["split", "--config", G2NET_CONFIG, "--output", str(out), "--overwrite"]) == 0
    assert _manifest(out)["fingerprints"] == before


# ---- light curves: FITS rows -------------------------------------------------------------------------------------

STAR = 8000001
PERIOD, EPOCH, DURATION_HOURS = 3.0, 201.0, 4.0


def _write_star(raw: Path) -> list[Path]:
    """One star in two contiguous files (200-210 d and 210-220 d; every 37th cadence of the first flagged), flat
    flux with 50 ppm noise and a 2000 ppm transit every 3 d; the transit at 210 d lies across the two files."""
    cadence = tce_sample.CADENCE_DAYS
    time = 200.0 + np.arange(int(20.0 / cadence)) * cadence
    rng = np.random.default_rng(1)
    flux = 1000.0 * (1.0 + rng.normal(0, 50e-6, time.size))
    flux *= 1.0 - tce_sample.periodic_transits(time, PERIOD, EPOCH, DURATION_HOURS / 24, 2e-3)
    quality = np.zeros(time.size, np.int32)
    quality[::37] = 1
    cut = int(np.searchsorted(time, 210.0 - 0.1))  # the first file ends just before the transit at 210 d
    paths = []
    for quarter, part in ((1, slice(0, cut)), (2, slice(cut, None))):
        path = raw / f"{STAR:09d}" / f"kplr{STAR:09d}-q{quarter:02d}_llc.fits"
        q = quality[part] if quarter == 1 else np.zeros(time[part].size, np.int32)
        tce_sample.write_kepler_fits(str(path), STAR, time[part], flux[part], flux[part] * 0 + 0.05, q, quarter)
        paths.append(path)
    row = {
        "target_id": str(STAR),
        "tce_plnt_num": "1",
        "tce_period": str(PERIOD),
        "tce_time0bk": str(EPOCH),
        "tce_duration": str(DURATION_HOURS),
        "label": "PC",
    }
    tce_sample.write_tce_table(str(raw / "tces.csv"), [row])
    return paths


@pytest.fixture(scope="module")
def tce(tmp_path_factory):
    base = tmp_path_factory.mktemp("provenance_tce")
    _write_star(base / "raw")
    _build(TCE_CONFIG, base / "raw", base / "out")
    return base / "raw", base / "out"


def _table(path: Path) -> dict[str, np.ndarray]:
    with fits.open(path) as hdul:
        data = hdul["LIGHTCURVE"].data
        return {name: np.array(data[name]) for name in ("TIME", "PDCSAP_FLUX", "SAP_QUALITY")}


def _windows(out: Path) -> dict[str, np.ndarray]:
    windows = {}
    for shard in sorted((out / "tfrecords").glob("*.tfrecord")):
        with open(shard, "rb") as handle:
            while (record := read_record(handle)) is not None:
                example = decode_example(record)
                uid = example.features.feature["uid"].bytes_list.value[0].decode()
                windows[uid] = decode_array(example, "flux_window", (100,))
    return windows


def test_light_curve_rows_name_the_fits_rows_of_each_window(tce):
    raw, out = tce
    cfg = load_config(DatasetConfig, TCE_CONFIG).section
    rows = _rows(out / "tfrecords")
    windows = _windows(out)
    tables = {str(p.relative_to(raw)): _table(p) for p in raw.rglob("*.fits")}
    kept = {name: (t["SAP_QUALITY"] == 0) & np.isfinite(t["PDCSAP_FLUX"]) for name, t in tables.items()}
    assert len(rows) >= 10 and {row["kind"] for row in rows} == {"transit", "oot"}
    spanning = [row for row in rows if len(row["source_path"].split(";")) == 2]
    assert [float(row["midtime"]) for row in spanning] == [pytest.approx(210.0)]
    for row in rows:
        spans = provenance.parse_rows(row["source_rows"])
        assert [name for name, _, _ in spans] == row["source_path"].split(";")
        assert row["source_sha256"].split(";") == [_sha256(raw / name) for name, _, _ in spans]
        half = 0.5 * cfg.window_durations * DURATION_HOURS / 24
        lo, hi = float(row["midtime"]) - half, float(row["midtime"]) + half
        named = {name: (start, stop) for name, start, stop in spans}
        times, fluxes = [], []
        for name, table in tables.items():
            good = kept[name]
            inside = np.flatnonzero(good & (table["TIME"] >= lo + 1e-5) & (table["TIME"] <= hi - 1e-5))
            if name not in named:
                assert inside.size == 0, (row["uid"], name)  # a file with cadences in the window is named
                continue
            start, stop = named[name]
            assert good[start] and good[stop - 1]  # the range starts and ends on a cadence the window used
            assert inside.size and start <= inside.min() and inside.max() < stop  # and holds every one of them
            t = table["TIME"][start:stop][good[start:stop]]
            assert lo - 1e-5 <= t.min() and t.max() <= hi + 1e-5
            times.append(t)
            median = np.median(table["PDCSAP_FLUX"][good])
            fluxes.append(table["PDCSAP_FLUX"][start:stop][good[start:stop]] / median - 1.0)
        time, flux = np.concatenate(times), np.concatenate(fluxes)
        order = np.argsort(time, kind="stable")
        time, flux = time[order], flux[order]
        # Roughly the stored window: the named rows' flux (divided by its file's median, not detrended), binned.
        binned, _ = binning.bin_rows(time, flux, [lo], [hi], cfg.n_bins, bin_width=tce_sample.CADENCE_DAYS)
        np.testing.assert_allclose(windows[row["uid"]], binned[0], atol=2e-4)


def test_light_curve_input_set_and_audit(tce, tmp_path):
    raw, out = tce
    listed = provenance.parse_inputs((out / "provenance" / "inputs.csv").read_text())
    assert set(listed) == {str(p.relative_to(raw)) for p in raw.rglob("*.fits")} | {"tces.csv"}
    raw_copy, out_copy = _copy(raw, out, tmp_path)
    assert audit_provenance.check_inputs(fs, str(out_copy), _manifest(out_copy)) == []
    fits_file = sorted(raw_copy.rglob("*.fits"))[1]
    data = bytearray(fits_file.read_bytes())
    data[20000] ^= 0x01
    fits_file.write_bytes(bytes(data))
    problems = audit_provenance.check_inputs(fs, str(out_copy), _manifest(out_copy))
    assert len(problems) == 1 and str(fits_file.relative_to(raw_copy)) in problems[0], problems


def test_views_name_every_file_of_the_star(tmp_path):
    """Mode "views" (no Beam): an example made from the whole light curve names both files and their rows."""
    paths = _write_star(tmp_path)
    cfg = load_config(DatasetConfig, TCE_CONFIG, ["tce.mode=views"]).section
    curves = []
    for path in paths:
        curve = fits_io.read_light_curve(path.read_bytes(), str(path), cfg)
        curves.append(curve)
    with open(tmp_path / "tces.csv", newline="") as handle:
        tces = [tce_table.parse_tce(row, cfg) for row in csv.DictReader(handle)]
    examples, _ = target.process_target(str(STAR), curves, tces, cfg)
    (example,) = examples
    spans = provenance.parse_rows(example.sources["source_rows"])
    assert [name for name, _, _ in spans] == [str(p) for p in paths]
    first_kept = np.flatnonzero(_table(paths[0])["SAP_QUALITY"] == 0)
    assert spans[0][1:] == (int(first_kept[0]), int(first_kept[-1]) + 1)
    assert spans[1][1:] == (0, len(_table(paths[1])["TIME"]))
