"""Light curves written by lightkurve (``LightCurve.to_fits()``) through the TESS and Kepler configs without any
override, against the same arrays in SPOC / Kepler archive format; and a build that writes nothing: it stops the
run (exit 2, one line with the reasons) and says, per TCE, what the build found instead of its star.

The files are made here by lightkurve itself (a dev dependency, setup.py ``extras_require["dev"]``): a plain
``LightCurve`` named only by ``OBJECT = 'TIC 100100827'`` (flagged cadences removed, no quality column), a
``TessLightCurve`` (``OBJECT`` / ``TARGETID``, ``QUALITY``) over two sectors, and a plain ``LightCurve`` named
``OBJECT = 'KIC 11442793'`` with a ``SAP_QUALITY`` column. Units: TESS times BTJD, Kepler BKJD, days; durations
hours; depths ppm.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from beam_pipelines.commands import cli
from beam_pipelines.dataset.errors import StageError
from beam_pipelines.stages.build import EMPTY_BUILD, check_not_empty
from transforms.config import DatasetConfig, load_config
from transforms.contract import RejectedInput
from transforms.recipes.tce import diagnostics, fits_io, lightkurve_files, schema
from transforms.recipes.tce import sample as tce_sample
from transforms.splitting import assign_split

lk = pytest.importorskip("lightkurve", reason="lightkurve is a dev dependency: pip install -e .[dev]")
from astropy.time import Time  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TESS = str(REPO / "run_configs" / "tce_tess.yaml")
KEPLER = str(REPO / "run_configs" / "tce_kepler.yaml")
TESS_CADENCE = 2.0 / 1440
TESS_COLUMNS = ("tic_id", "tce_plnt_num", "tce_period", "tce_time0bt", "tce_duration", "disposition")
# (TIC id, seed, period d, epoch BTJD, duration h, depth ppm, sectors)
TESS_STARS = ((100100827, 1, 2.7, 1411.2, 2.5, 3000.0, 1), (261136679, 2, 4.1, 1412.0, 3.5, 1500.0, 2))
KIC = 11442793


def _tess_sector(seed: int, star: tuple, sector: int):
    """(time BTJD, flux e-/s, flux_err, quality) of one 12-day sector: variability, noise, a 1-day downlink gap,
    40 flagged cadences (half of them with NaN flux) and the star's trapezoid transits."""
    _, _, period, epoch, duration, depth, _ = star
    rng = np.random.default_rng([seed, sector])
    start = 1410.0 + 28.0 * sector
    time = start + np.arange(int(12.0 / TESS_CADENCE)) * TESS_CADENCE
    time = time[(time < start + 5.8) | (time > start + 6.8)]
    deficit = tce_sample.periodic_transits(time, period, epoch, duration / 24, depth * 1e-6, exposure=TESS_CADENCE)
    relative = (1 + 8e-4 * np.sin(2 * np.pi * time / 4.3)) * (1 - deficit) + rng.normal(0, 3e-4, time.size)
    flux = 1.5e4 * relative
    quality = np.zeros(time.size, np.int32)
    flagged = rng.choice(time.size, 40, replace=False)
    quality[flagged] = rng.choice([1, 4, 32, 1024], 40)
    flux[flagged[:20]] = np.nan
    return time, flux, np.full(time.size, 4.5), quality


def _tess_row(star: tuple) -> dict[str, str]:
    tic, _, period, epoch, duration, _, _ = star
    values = (str(tic), "1", f"{period}", f"{epoch}", f"{duration}", "PC")
    return dict(zip(TESS_COLUMNS, values, strict=True))


def _write_table(path: Path, columns, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def tess_raw(tmp_path_factory):
    """The same two TESS stars as SPOC files (``spoc/``) and as lightkurve files (``lk/``), each with tces.csv."""
    root = tmp_path_factory.mktemp("tess_lightkurve")
    spoc, lkdir = root / "spoc", root / "lk"
    first = TESS_STARS[0][0]
    (lkdir / "second").mkdir(parents=True)
    for star in TESS_STARS:
        tic, seed, *_, sectors = star
        for sector in range(sectors):
            time, flux, err, quality = _tess_sector(seed, star, sector)
            name = f"tess2019{sector:03d}000000-s{sector + 10:04d}-{tic:016d}-0120-s_lc.fits"
            tce_sample.write_tess_fits(str(spoc / name), tic, time, flux, err, quality, sector=sector + 10)
            btjd = Time(time, format="btjd", scale="tdb")
            if tic == first:  # the file: a plain LightCurve, flags applied, named only by OBJECT
                ok = quality == 0
                meta = {"MISSION": "TESS", "TELESCOP": "TESS"}
                curve = lk.LightCurve(time=btjd[ok], flux=flux[ok], flux_err=err[ok], meta=meta)
                curve.to_fits(path=str(lkdir / "my_target.fits"), overwrite=True, OBJECT=f"TIC {tic}")
            else:
                curve = lk.TessLightCurve(time=btjd, flux=flux, flux_err=err, quality=quality, targetid=tic)
                curve.to_fits(path=str(lkdir / "second" / f"sector{sector}.fits"), overwrite=True)
    for folder in (spoc, lkdir):
        _write_table(folder / "tces.csv", TESS_COLUMNS, [_tess_row(s) for s in TESS_STARS])
    return spoc, lkdir


@pytest.fixture(scope="module")
def kepler_raw(tmp_path_factory):
    """One Kepler star (two quarters of the sample generator's data) as archive files and as lightkurve files."""
    root = tmp_path_factory.mktemp("kepler_lightkurve")
    spoc, lkdir = root / "spoc", root / "lk"
    lkdir.mkdir()
    _, tces, curves = tce_sample.make_target(0, 1, "mixed", 2, 25.0)
    for quarter, time, flux, err, quality in curves:
        archive = spoc / f"kplr{KIC:09d}-q{quarter:02d}_llc.fits"
        tce_sample.write_kepler_fits(str(archive), KIC, time, flux, err, quality, quarter=quarter)
        meta = {"MISSION": "Kepler", "TELESCOP": "Kepler"}
        curve = lk.LightCurve(time=Time(time, format="bkjd", scale="tdb"), flux=flux, flux_err=err, meta=meta)
        curve.to_fits(path=str(lkdir / f"q{quarter}.fits"), overwrite=True, OBJECT=f"KIC {KIC}", SAP_QUALITY=quality)
    rows = [replace(t, target_id=str(KIC)).table_row() for t in tces]
    for folder in (spoc, lkdir):
        tce_sample.write_tce_table(str(folder / "tces.csv"), rows)
    return spoc, lkdir


def _built(out: Path) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """(data-table rows by uid, flux window by uid) of a build's raw shards."""
    import tensorflow as tf

    rows = {}
    for path in sorted((out / "tfrecords").glob("data_tbl_*.csv")):
        with open(path, newline="") as handle:
            rows.update({r["uid"]: r for r in csv.DictReader(handle)})
    windows = {}
    for path in sorted((out / "tfrecords").glob("raw_shard_*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(path)):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            uid = feature["uid"].bytes_list.value[0].decode()
            windows[uid] = np.frombuffer(feature[schema.FLUX_WINDOW].bytes_list.value[0], "<f4")
    return rows, windows


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _rejected(out: Path) -> list[dict]:
    with open(out / "rejected" / "build.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _same_windows(spoc_out: Path, lk_out: Path) -> int:
    """Asserts both builds wrote the same examples with the same windows and rejected the same decisions."""
    spoc_rows, spoc_windows = _built(spoc_out)
    lk_rows, lk_windows = _built(lk_out)
    assert sorted(lk_windows) == sorted(spoc_windows) and spoc_windows
    skip = {"shard", "source_path", "source_sha256", "source_rows"}  # provenance names each build's own files
    for uid, window in spoc_windows.items():
        np.testing.assert_allclose(lk_windows[uid], window, rtol=0, atol=1e-6, err_msg=uid)
        assert {k: v for k, v in lk_rows[uid].items() if k not in skip} == {
            k: v for k, v in spoc_rows[uid].items() if k not in skip
        }
    spoc_build, lk_build = _manifest(spoc_out)["stages"]["build"], _manifest(lk_out)["stages"]["build"]
    assert lk_build["rejected_by_reason"] == spoc_build["rejected_by_reason"]
    assert lk_build["written"] == spoc_build["written"] == len(spoc_windows)
    return len(spoc_windows)


# ---- header and column rules (no Beam) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TIC 100100827", "100100827"),
        ("KIC 11442793", "11442793"),
        ("kplr011442793", "11442793"),
        ("tic-0025155310", "25155310"),
        (100100827, "100100827"),
        ("100100827", "100100827"),
        ("Kepler-10", ""),
        ("TOI-700", ""),
        ("None", ""),
        (None, ""),
        ("", ""),
        (True, ""),
    ],
)
def test_star_id_parsed_from_a_lightkurve_header_value(value, expected):
    assert lightkurve_files.parse_star_id(value) == expected


def _lk_bytes(tmp_path: Path, curve, **extra) -> tuple[bytes, str]:
    path = tmp_path / "made_by_lightkurve.fits"
    curve.to_fits(path=str(path), overwrite=True, **extra)
    return path.read_bytes(), str(path)


def test_lightkurve_files_are_read_by_both_configs(tmp_path):
    """Id from TARGETID / OBJECT, FLUX / FLUX_ERR, the quality column of either mission, BJD zero from the time
    format; the header-only id read agrees; detection off reads them as SPOC files (and rejects them)."""
    time = 1400.0 + np.arange(300) * TESS_CADENCE
    flux = np.full(time.size, 2.0e4)
    quality = np.zeros(time.size, np.int32)
    quality[:7] = 512
    tess = lk.TessLightCurve(
        time=Time(time, format="btjd", scale="tdb"), flux=flux, flux_err=flux * 1e-3, quality=quality, targetid=42
    )
    plain = lk.LightCurve(time=time, flux=flux)  # no errors: FLUX_ERR NaN everywhere; TIME's unit "jd"
    for config in (TESS, KEPLER):
        cfg = load_config(DatasetConfig, config).tce
        data, path = _lk_bytes(tmp_path, tess)
        curve = fits_io.read_light_curve(data, path, cfg)
        assert (curve.target_id, curve.bjd_ref, curve.time.size) == ("42", 2457000.0, time.size - 7)
        with open(path, "rb") as handle:
            assert fits_io.read_target_id(handle.read, path, cfg) == "42"
        data, path = _lk_bytes(tmp_path, plain, OBJECT="KIC 11442793")
        curve = fits_io.read_light_curve(data, path, cfg)
        assert (curve.target_id, curve.bjd_ref, curve.time.size) == ("11442793", 0.0, time.size)
        np.testing.assert_array_equal(curve.flux, 1.0)
    off = load_config(DatasetConfig, TESS, ["tce.lightkurve.detect=false"]).tce
    with pytest.raises(RejectedInput) as info:
        fits_io.read_light_curve(data, path, off)
    assert info.value.reason == schema.MISSING_COLUMNS and "PDCSAP_FLUX" in info.value.detail
    data, path = _lk_bytes(tmp_path, plain)  # OBJECT left blank: no id anywhere
    with pytest.raises(RejectedInput) as info:
        fits_io.read_light_curve(data, path, load_config(DatasetConfig, TESS).tce)
    assert info.value.reason == schema.NO_TARGET_ID
    assert "['TICID', 'KEPLERID', 'TARGETID', 'OBJECT', 'LABEL']" in info.value.detail


def test_no_light_curve_detail_says_what_was_found():
    cfg = load_config(DatasetConfig, TESS).tce
    found = diagnostics.FilesFound()
    for item in [(diagnostics.MATCHED, "")] * 9 + [(diagnostics.KEYED, "")] * 8:
        found = diagnostics.add_found(found, *item)
    for target_id in ("30", "7", "12", "9", "100", "8", "11"):
        found = diagnostics.add_found(found, diagnostics.TARGET, target_id)
    merged = diagnostics.merge_found([found, diagnostics.FilesFound(1, 1, 1, ("5",))])
    assert merged == diagnostics.FilesFound(10, 9, 8, ("5", "7", "8", "9", "11"))
    detail = diagnostics.no_light_curve_detail("99", cfg, "/raw/**.fits", merged)
    assert "'/raw/**.fits' matched 10 file(s), 9 with a target id, 8 distinct target id(s) (5, 7, 8, 9, 11, ...)" in (
        detail
    )
    assert "header keys TICID (lightkurve files: then KEPLERID, TARGETID, OBJECT, LABEL)" in detail
    nothing = diagnostics.no_light_curve_detail("99", cfg, "/raw/**_lc.fits", diagnostics.FilesFound())
    assert "matched 0 file(s); check --input and tce.fits_glob" in nothing
    own = diagnostics.no_light_curve_detail("99", cfg, "/raw/**.fits", merged, ["missing_columns"] * 2)
    assert "2 light-curve file(s), none readable (missing_columns 2)" in own


# ---- end to end --------------------------------------------------------------------------------------------------


def test_lightkurve_tess_files_run_end_to_end_like_spoc_files(tess_raw, tmp_path):
    """``sigforge run`` with the TESS config and no --set at all; its windows equal the SPOC files' build's."""
    spoc, lkdir = tess_raw
    fractions = load_config(DatasetConfig, TESS).split
    assert {assign_split(str(s[0]), fractions.fractions, fractions.salt) for s in TESS_STARS} == {"train"}
    lk_out, spoc_out = tmp_path / "lk", tmp_path / "spoc"
    assert cli.main(["run", "--config", TESS, "--input", str(lkdir), "--output", str(lk_out), "--no-report"]) == 0
    assert cli.main(["build", "--config", TESS, "--input", str(spoc), "--output", str(spoc_out)]) == 0
    written = _same_windows(spoc_out, lk_out)
    lk_rows, _ = _built(lk_out)
    assert {r["target_id"] for r in lk_rows.values()} == {str(s[0]) for s in TESS_STARS}
    assert sum(r["kind"] == "transit" for r in lk_rows.values()) >= 6
    stages = _manifest(lk_out)["stages"]
    assert set(stages) >= {"build", "split", "analyze", "normalize"}
    assert stages["split"]["splits"]["train"]["examples"] == written
    assert stages["build"]["files_matched"] == 3  # the two stars' files; tces.csv is not a light curve
    assert cli.main(["audit", str(lk_out)]) == 0  # its recount of the raw inputs reads the same ids


def test_lightkurve_kepler_files_build_like_archive_files(kepler_raw, tmp_path):
    spoc, lkdir = kepler_raw
    lk_out, spoc_out = tmp_path / "lk", tmp_path / "spoc"
    assert cli.main(["build", "--config", KEPLER, "--input", str(lkdir), "--output", str(lk_out)]) == 0
    assert cli.main(["build", "--config", KEPLER, "--input", str(spoc), "--output", str(spoc_out)]) == 0
    assert _same_windows(spoc_out, lk_out) > 0


def test_a_build_that_writes_nothing_stops_the_run_and_says_why(tess_raw, tmp_path, caplog):
    """A TCE table naming a star no file has: `sigforge run` stops after build (exit 2, one line), the build's
    rejections are published, no later stage ran; `sigforge build` and `sigforge split` refuse the same way."""
    _, lkdir = tess_raw
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "my_target.fits").write_bytes((lkdir / "my_target.fits").read_bytes())
    rows = [_tess_row(TESS_STARS[0]) | {"tic_id": "100100999", "tce_plnt_num": str(n)} for n in (1, 2)]
    _write_table(raw / "tces.csv", TESS_COLUMNS, rows)
    out = tmp_path / "ds"

    def refused(argv) -> str:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert cli.main(argv) == 2
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is None
        return errors[0].getMessage()

    line = refused(["run", "--config", TESS, "--input", str(raw), "--output", str(out)])
    assert "build wrote 0 examples of 3 seen (tce_without_light_curve 2, light_curve_without_tce 1)" in line
    assert "tce.fits_glob" in line and "100100827" in line and str(out / "rejected" / "build.csv") in line
    assert set(_manifest(out)["stages"]) == {"build"}
    assert not (out / "split").exists() and not (out / "stats").exists() and not (out / "report").exists()
    by_reason = {}
    for row in _rejected(out):
        by_reason.setdefault(row["reason"], []).append(row)
    detail = by_reason[schema.TCE_WITHOUT_LIGHT_CURVE][0]["detail"]
    assert f"tce.fits_glob '{raw}/**.fits' matched 1 file(s), 1 with a target id" in detail
    assert "1 distinct target id(s) (100100827), none 100100999" in detail
    assert "header keys TICID (lightkurve files: then KEPLERID, TARGETID, OBJECT, LABEL)" in detail
    assert refused(["build", "--config", TESS, "--input", str(raw), "--output", str(out), "--overwrite"]) == line
    assert refused(["split", "--config", TESS, "--output", str(out)]) == line
    assert not (out / "split").exists()
    with pytest.raises(StageError) as info:
        check_not_empty(str(out), _manifest(out)["stages"]["build"])
    assert info.value.code == EMPTY_BUILD
