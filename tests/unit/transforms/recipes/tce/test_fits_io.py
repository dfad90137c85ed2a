"""FITS light curves (transforms/recipes/tce/fits_io.py): Kepler cleaning and normalization, bad files with
their reasons, and a TESS SPOC file through the TESS recipe."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import KEPLER90, RUN_CONFIGS
from tests.support.tce_fixture import CADENCE, make_cfg
from transforms.config import DatasetConfig, load_config
from transforms.contract import RejectedInput
from transforms.recipes.tce import fits_io, schema, target, tce_table
from transforms.recipes.tce import sample as tce_sample


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
    curve = fits_io.read_light_curve(data, path, make_cfg())
    assert curve.target_id == "42" and curve.n_cadences == 300 and curve.time.size == 297
    assert curve.bjd_ref == 2454833.0 and curve.mission == "Kepler"
    assert np.median(curve.flux) == pytest.approx(1.0) and np.all(np.diff(curve.time) > 0)
    lenient = fits_io.read_light_curve(data, path, make_cfg(quality_bitmask=128))
    assert lenient.time.size == 298  # the flag-16 cadence is kept, the NaN one never
    no_header, named = _fits_bytes(tmp_path, "kplr000000042-q02_llc.fits", header_id=False)
    assert fits_io.read_light_curve(no_header, named, make_cfg(target_id_source="filename")).target_id == "42"


def test_bad_fits_files_are_rejected_with_their_reason(tmp_path):
    data, path = _fits_bytes(tmp_path)
    cases = [
        (data[: len(data) // 2], schema.UNREADABLE_FITS),
        (data[: 2880 * 3], schema.UNREADABLE_FITS),
        (b"SIMPLE  = garbage" * 200, schema.UNREADABLE_FITS),
        (b"", schema.UNREADABLE_FITS),
        (_fits_bytes(tmp_path, "b.fits", columns=("TIME", "SAP_FLUX", "SAP_QUALITY"))[0], schema.MISSING_COLUMNS),
        (_fits_bytes(tmp_path, "c.fits", header_id=False)[0], schema.NO_TARGET_ID),
    ]
    for payload, reason in cases:
        with pytest.raises(RejectedInput) as info:
            fits_io.read_light_curve(payload, path, make_cfg())
        assert info.value.reason == reason, info.value


def test_tess_spoc_light_curve_with_the_tess_recipe(tmp_path):
    from astropy.io import fits

    cfg = load_config(DatasetConfig, str(RUN_CONFIGS / "tce_tess.yaml")).tce
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
    curve = fits_io.read_light_curve(path.read_bytes(), str(path), cfg)
    assert curve.target_id == "25155310" and curve.bjd_ref == 2457000.0
    assert curve.time.size == time.size - np.count_nonzero(quality)
    row = {"tic_id": "25155310", "tce_plnt_num": "1", "tce_period": "2.0", "tce_time0bt": "1401.0",
           "tce_duration": "3.0", "disposition": "KP"}  # fmt: skip
    examples, drops = target.process_target(curve.target_id, [curve], [tce_table.parse_tce(row, cfg)], cfg)
    transits = [e for e in examples if e.row["kind"] == "transit"]
    assert [e.row["midtime"] for e in transits] == [1401.0, 1403.0, 1405.0] and drops == []
    for e in transits:
        assert e.label == 1 and np.median(e.arrays[schema.FLUX_WINDOW][46:54]) == pytest.approx(-2e-3, rel=0.02)


def test_columns_read_from_bytes_equal_astropys_table(tmp_path):
    """The direct column read gives astropy's arrays bit for bit (generated Kepler file, real Kepler-90, a table
    with strings and vectors around the columns); a scaled column is left to astropy."""
    from astropy.io import fits

    data, _ = _fits_bytes(tmp_path)
    n = 50
    mixed = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="NAME", format="7A", array=np.array(["a"] * n)),
            fits.Column(name="TIME", format="D", array=np.arange(n) * 0.5),
            fits.Column(name="VEC", format="3E", array=np.ones((n, 3))),
            fits.Column(name="FLAGS", format="11X", array=np.zeros((n, 11), bool)),
            fits.Column(name="PDCSAP_FLUX", format="E", array=np.linspace(1, 2, n)),
            fits.Column(name="SAP_QUALITY", format="I", array=np.arange(n) % 3),
            fits.Column(name="SCALED", format="J", array=np.arange(n, dtype=np.uint32), bzero=2**31),
        ],
        name="LIGHTCURVE",
    )
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), mixed]).writeto(buffer)
    kepler90 = next(KEPLER90.glob("*.fits")).read_bytes()
    for payload in (data, buffer.getvalue(), kepler90):
        with fits.open(io.BytesIO(payload)) as hdul:
            hdu = hdul["LIGHTCURVE"]
            wanted = [c for c in ("TIME", "PDCSAP_FLUX", "SAP_QUALITY") if c in hdu.columns.names]
            direct = fits_io._columns_from_bytes(hdu.header, payload, hdu.fileinfo()["datLoc"], wanted)
            assert sorted(direct) == sorted(wanted)
            for name in wanted:
                np.testing.assert_array_equal(direct[name], np.array(hdu.data[name]), strict=True)
    with fits.open(io.BytesIO(buffer.getvalue())) as hdul, pytest.raises(LookupError):
        fits_io._columns_from_bytes(hdul[1].header, buffer.getvalue(), hdul[1].fileinfo()["datLoc"], ["SCALED"])


def test_target_id_from_the_headers_alone_matches_the_full_read(tmp_path):
    from astropy.io import fits

    data, path = _fits_bytes(tmp_path)
    table_only = fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("TIME", "D", array=[1.0])])]
    )
    table_only[1].header["TICID"] = 25155310  # the id only in the table header
    buffer = io.BytesIO()
    table_only.writeto(buffer)
    cfg = make_cfg()
    for payload, expected in ((data, "42"), (buffer.getvalue(), "25155310")):
        reads = []

        def read(n, payload=payload, reads=reads):
            reads.append(n)
            return payload[sum(reads[:-1]) : sum(reads)]

        assert fits_io.read_target_id(read, path, cfg) == expected
    assert fits_io.read_light_curve(data, path, cfg).target_id == "42"
    real = next(KEPLER90.glob("*.fits"))
    with open(real, "rb") as handle:
        assert fits_io.read_target_id(handle.read, str(real), cfg) == "11442793"
        assert handle.tell() < real.stat().st_size / 4  # the headers only, not the table
    no_id, named = _fits_bytes(tmp_path, "kplr000000077-q02_llc.fits", header_id=False)
    assert fits_io.read_target_id(io.BytesIO(no_id).read, named, make_cfg(target_id_source="filename")) == "77"
    for payload, reason in ((no_id, schema.NO_TARGET_ID), (b"garbage" * 100, schema.UNREADABLE_FITS)):
        with pytest.raises(RejectedInput) as info:
            fits_io.read_target_id(io.BytesIO(payload).read, named, cfg)
        assert info.value.reason == reason
