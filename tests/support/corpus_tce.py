"""A corpus of bad light-curve inputs for the TCE recipe, added to a clean generated sample in one raw folder.

``add_tce_corpus(raw)`` writes every case and returns ``(files, rows, uids)``: ``{file name: reason}`` for the
light curves, ``{tce row text prefix: reason}`` for TCE-table rows that do not parse, and ``{tce_uid: reason}``
for rows that parse but cannot become examples. Each bad file belongs to its own star without
a TCE row, so the file's own rejection is its only outcome.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from transforms.contract import MALFORMED_ROW
from transforms.csv_rows import UNDECODABLE_ROW
from transforms.recipes.tce import sample as tce_sample
from transforms.recipes.tce import schema


def write_fits(path: Path, kepler_id: int | None, columns: dict[str, tuple[str, np.ndarray]]) -> None:
    """A minimal Kepler-like light curve with the given ``{name: (FITS format, array)}`` columns."""
    primary = fits.PrimaryHDU()
    if kepler_id is not None:
        primary.header["KEPLERID"] = kepler_id
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=name, format=fmt, array=array) for name, (fmt, array) in columns.items()],
        name="LIGHTCURVE",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([primary, table]).writeto(path)


def add_tce_corpus(raw: Path, tce_rows: list[dict[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    n = 900
    time = 300.0 + np.arange(n) * tce_sample.CADENCE_DAYS
    flux = 1000.0 + np.random.default_rng(1).normal(0, 0.1, n)
    ones, zeros = np.ones(n), np.zeros(n, np.int32)
    bad = raw / "corpus"
    files: dict[str, str] = {}

    def lc(name, kepler_id, **overrides):
        columns = {"TIME": ("D", time), "PDCSAP_FLUX": ("D", flux), "PDCSAP_FLUX_ERR": ("D", ones),
                   "SAP_QUALITY": ("J", zeros)}  # fmt: skip
        columns.update(overrides)
        write_fits(bad / name, kepler_id, columns)

    lc("kplr006000001-vector_llc.fits", 6000001, PDCSAP_FLUX=("2D", np.stack([flux, flux], axis=1)))
    files["kplr006000001-vector_llc.fits"] = schema.NON_SCALAR_COLUMN
    lc("kplr006000002-negflux_llc.fits", 6000002, PDCSAP_FLUX=("D", flux - 1000.5))
    files["kplr006000002-negflux_llc.fits"] = schema.NON_POSITIVE_FLUX
    lc("kplr006000003-zeroflux_llc.fits", 6000003, PDCSAP_FLUX=("D", flux * 0))
    files["kplr006000003-zeroflux_llc.fits"] = schema.NON_POSITIVE_FLUX
    few = np.where(np.arange(n) < 10, 0, 1).astype(np.int32)
    lc("kplr006000004-few_llc.fits", 6000004, SAP_QUALITY=("J", few))
    files["kplr006000004-few_llc.fits"] = schema.TOO_FEW_CADENCES
    lc("kplr006000005-flagged_llc.fits", 6000005, SAP_QUALITY=("J", zeros + 1))
    files["kplr006000005-flagged_llc.fits"] = schema.EMPTY_LIGHT_CURVE
    lc("kplr006000006-allnan_llc.fits", 6000006, PDCSAP_FLUX=("D", flux * np.nan))
    files["kplr006000006-allnan_llc.fits"] = schema.EMPTY_LIGHT_CURVE
    lc("kplr006000007-text_llc.fits", 6000007, PDCSAP_FLUX=("8A", np.array(["abc"] * n)))
    files["kplr006000007-text_llc.fits"] = schema.UNREADABLE_FITS
    lc("noid-star_llc.fits", None)
    files["noid-star_llc.fits"] = schema.NO_TARGET_ID
    lc("kplr006000009-nocol_llc.fits", 6000009)
    files["kplr006000009-nocol_llc.fits"] = schema.MISSING_COLUMNS
    os.remove(bad / "kplr006000009-nocol_llc.fits")
    write_fits(bad / "kplr006000009-nocol_llc.fits", 6000009, {"TIME": ("D", time)})
    (bad / "kplr006000010-empty_llc.fits").write_bytes(b"")
    files["kplr006000010-empty_llc.fits"] = schema.UNREADABLE_FITS
    (bad / "kplr006000011-npy_llc.fits").write_bytes(b"\x93NUMPY" + b"\0" * 2874)
    files["kplr006000011-npy_llc.fits"] = schema.UNREADABLE_FITS
    os.mkfifo(bad / "kplr006000012-fifo_llc.fits")
    files["kplr006000012-fifo_llc.fits"] = schema.NOT_A_REGULAR_FILE
    (bad / "kplr006000013-folder_llc.fits").mkdir()
    files["kplr006000013-folder_llc.fits"] = schema.NOT_A_REGULAR_FILE
    os.symlink(bad / "missing.fits", bad / "kplr006000014-dangling_llc.fits")
    files["kplr006000014-dangling_llc.fits"] = schema.NOT_A_REGULAR_FILE
    empty, empty_int = np.zeros(0), np.zeros(0, np.int32)
    lc("kplr006000015-zerorows_llc.fits", 6000015, TIME=("D", empty), PDCSAP_FLUX=("D", empty),
       PDCSAP_FLUX_ERR=("D", empty), SAP_QUALITY=("J", empty_int))  # fmt: skip
    files["kplr006000015-zerorows_llc.fits"] = schema.EMPTY_LIGHT_CURVE
    lc("kplr006000016-nantime_llc.fits", 6000016, TIME=("D", time * np.nan))
    files["kplr006000016-nantime_llc.fits"] = schema.EMPTY_LIGHT_CURVE

    # TCE-table rows on the first sample star (its light curves are good), each with one defect.
    base = tce_rows[0]
    rows = {
        "empty disposition": ({**base, "tce_plnt_num": "21", "label": ""}, schema.MISSING_DISPOSITION),
        "blank disposition": ({**base, "tce_plnt_num": "22", "label": "  "}, schema.MISSING_DISPOSITION),
        "negative duration": ({**base, "tce_plnt_num": "23", "tce_duration": "-2"}, schema.BAD_TCE),
        "infinite epoch": ({**base, "tce_plnt_num": "24", "tce_time0bk": "inf"}, schema.BAD_TCE),
        "huge period": ({**base, "tce_plnt_num": "25", "tce_period": "1e400"}, schema.BAD_PERIOD),
        "empty target": ({**base, "tce_plnt_num": "26", "target_id": ""}, schema.BAD_TCE),
        "nan period": ({**base, "tce_plnt_num": "27", "tce_period": "nan"}, schema.BAD_PERIOD),
        "long duration": (
            {**base, "tce_plnt_num": "28", "tce_duration": str(float(base["tce_period"]) * 30)},
            schema.BAD_TCE,
        ),  # fmt: skip
    }
    header = list(base)
    lines = [",".join(str(row[c]) for c in header) for row, _ in rows.values()]
    expected_rows = {line[:60]: reason for line, (_, reason) in zip(lines, rows.values(), strict=True)}
    undecodable = ",".join(str(base[c]) for c in header).replace(str(base["tce_plnt_num"]), "2\xff7", 1)
    data = "\n".join(lines).encode() + b"\n" + undecodable.encode("latin-1") + b"\n"
    expected_rows[undecodable[:20].encode("latin-1").decode("utf-8", "backslashreplace")] = UNDECODABLE_ROW
    # TCE rows that parse but cannot be examples, named by their tce_uid: the first sample row once more, and a
    # TCE of a star with no light curve.
    header_line = ",".join(header)
    orphan = {**base, "target_id": "6999999", "tce_plnt_num": "1"}
    data += (",".join(str(base[c]) for c in header) + "\n" + ",".join(str(orphan[c]) for c in header) + "\n").encode()
    # A TCE shorter than one cadence (6 min vs 29.4 min) on a good light curve: no window can resolve it.
    lc("kplr006000020-good_llc.fits", 6000020)
    short = {**base, "target_id": "6000020", "tce_plnt_num": "1", "tce_period": "0.5", "tce_time0bk": "300.1",
             "tce_duration": "0.1"}  # fmt: skip
    data += (",".join(str(short[c]) for c in header) + "\n").encode()
    data += b"one,field,too,many," + header_line.encode() + b"\n"
    expected_rows["one,field,too,many"] = MALFORMED_ROW
    uids = {
        f"{base['target_id']}-{base['tce_plnt_num']}": schema.DUPLICATE_TCE,
        "6999999-1": schema.TCE_WITHOUT_LIGHT_CURVE,
        "6000020-1": schema.UNRESOLVED_TRANSIT,
    }
    with open(raw / "tces.csv", "ab") as handle:
        handle.write(data)
    return files, expected_rows, uids
