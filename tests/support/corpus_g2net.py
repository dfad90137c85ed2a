"""A corpus of bad (and oddly valid) G2Net inputs, added to a clean generated sample in one raw folder.

``add_g2net_corpus(raw)`` writes every case and returns ``{sample_id: expected}`` where ``expected`` is a
rejection reason or ``WRITTEN`` (valid input in an unusual encoding, which must be written with the right
values). Cases cover every class of bad input the build must reject, plus valid inputs in unusual encodings.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from transforms.recipes.g2net import strain as s

WRITTEN = "written"
MALFORMED_ROW = "malformed_csv_row"
UNDECODABLE_ROW = "undecodable_csv_row"
OUTLIER_IN_STATS = "written_outside_statistics"  # written, but excluded from the statistics (analyze guard)


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def huge_header() -> bytes:
    """A v1.0 .npy header declaring 3 x 10^12 float64 samples, followed by a few bytes of data."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (3, 10**12)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\0" * 64


def _path(raw: Path, uid: str) -> Path:
    path = raw / "train" / uid[0] / uid[1] / uid[2] / f"{uid}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def add_g2net_corpus(raw: Path, good: np.ndarray, outlier_in_range: bool = True) -> dict[str, str]:
    """Adds the corpus to ``raw`` (a clean ``sigforge make-sample g2net`` folder); ``good`` is one clean sample."""
    rng = np.random.default_rng(7)
    expected: dict[str, str] = {}
    rows: list[str] = []

    def put(uid: str, payload: bytes, outcome: str, label: str = "1") -> None:
        _path(raw, uid).write_bytes(payload)
        expected[uid] = outcome
        rows.append(f"{uid},{label},{uid}")

    quantized = np.round(good / good.std() * 4) / 4 * good.std()  # ~20 levels per channel
    # ---- unreadable / wrong containers (an .npz as .npy, a terabyte header) ----
    buffer = io.BytesIO()
    np.savez(buffer, strain=good)
    put("npzasnpy01", buffer.getvalue(), s.UNREADABLE_NPY)
    put("hugehead02", huge_header(), s.WRONG_SHAPE)
    put("emptyfil03", b"", s.UNREADABLE_NPY)
    put("truncate04", npy_bytes(good)[:5000], s.TRUNCATED_NPY)
    put("trailing05", npy_bytes(good) + b"junk", s.UNREADABLE_NPY)
    put("pickled06", npy_bytes(np.array([{"a": 1}] * 3, dtype=object)), s.UNSUPPORTED_DTYPE)
    put("textfile07", b"id,target\n1,2\n", s.UNREADABLE_NPY)
    put("shape3d008", npy_bytes(good[None]), s.WRONG_SHAPE)
    put("transpo009", npy_bytes(good.T.copy()), s.WRONG_SHAPE)
    # ---- wrong dtypes (int16, timedelta, float16, complex, bool) ----
    put("int16a0010", npy_bytes((good / good.std() * 1000).astype(np.int16)), s.UNSUPPORTED_DTYPE)
    put("timedel011", npy_bytes(np.zeros(good.shape, dtype="m8[ns]")), s.UNSUPPORTED_DTYPE)
    put("float16012", npy_bytes(good.astype(np.float16)), s.UNSUPPORTED_DTYPE)
    put("complex013", npy_bytes(good.astype(np.complex128)), s.UNSUPPORTED_DTYPE)
    put("boolean014", npy_bytes(good > 0), s.UNSUPPORTED_DTYPE)
    # ---- physically wrong values ----
    put("allzero015", npy_bytes(np.zeros_like(good)), s.FLAT_CHANNEL)
    put("onezero016", npy_bytes(np.vstack([good[:2], np.zeros((1, good.shape[1]))])), s.FLAT_CHANNEL)
    put("times1e30", npy_bytes(good * 1e30), s.AMPLITUDE_OUT_OF_RANGE)
    put("times1e52", npy_bytes(good * 1e52), s.AMPLITUDE_OUT_OF_RANGE)
    put("near1e300", npy_bytes(good / good.std() * 1e300), s.AMPLITUDE_OUT_OF_RANGE)
    put("tiny1e300", npy_bytes(good * 1e-300), s.AMPLITUDE_OUT_OF_RANGE)
    put("counts020", npy_bytes(good / good.std() * 1000), s.AMPLITUDE_OUT_OF_RANGE)
    put("quantiz021", npy_bytes(quantized), s.QUANTIZED)
    put("nanvalu022", npy_bytes(np.where(np.arange(good.size).reshape(good.shape) == 9, np.nan, good)), s.NON_FINITE)
    put("infvalu023", npy_bytes(np.where(np.arange(good.size).reshape(good.shape) == 9, -np.inf, good)), s.NON_FINITE)
    # ---- labels outside the declared set, unparsable labels ----
    put("label2a024", npy_bytes(good), s.LABEL_NOT_DECLARED, label="2")
    put("labelm1025", npy_bytes(good), s.LABEL_NOT_DECLARED, label="-1")
    put("labelhuge6", npy_bytes(good), s.BAD_LABEL, label="1e400")
    put("labelnan27", npy_bytes(good), s.BAD_LABEL, label="nan")
    put("labelemp28", npy_bytes(good), s.BAD_LABEL, label="")
    # ---- valid inputs in unusual encodings: written, values equal to the plain float64 file's ----
    noise = good + rng.normal(0, good.std() * 0.1, good.shape)
    put("fortran029", npy_bytes(np.asfortranarray(noise)), WRITTEN, label="0")
    put("bigendi030", npy_bytes(noise.astype(">f8")), WRITTEN, label="0")
    put("float32031", npy_bytes(noise.astype(np.float32)), WRITTEN, label="0")
    put("version2032", npy_bytes(noise, version=(2, 0)), WRITTEN, label="0")
    put("labelfl033", npy_bytes(noise), WRITTEN, label="1.0")
    if outlier_in_range:  # inside the physical range (V1 ~4e-21 x 1e3 < 1e-17), 10^3 x the others: written, excluded
        put("outlier034", npy_bytes(noise * 1e3), OUTLIER_IN_STATS, label="0")
    # ---- files that are not regular files ----
    fifo = _path(raw, "fifoname35")
    os.mkfifo(fifo)
    expected["fifoname35"] = s.NOT_A_REGULAR_FILE
    rows.append("fifoname35,1,fifoname35")
    _path(raw, "foldernm36").mkdir()
    expected["foldernm36"] = s.NOT_A_REGULAR_FILE  # no label row either: must still be seen
    os.symlink(raw / "does-not-exist.npy", _path(raw, "dangling37"))
    expected["dangling37"] = s.NOT_A_REGULAR_FILE  # no label row either
    # ---- join problems ----
    put("nolabel038", npy_bytes(good), s.FILE_WITHOUT_LABEL)
    rows.pop()  # ... by removing its label row
    expected["nofile0039"] = s.LABEL_WITHOUT_FILE
    rows.append("nofile0039,0,nofile0039")
    put("duplica040", npy_bytes(good), s.DUPLICATE_ID)
    rows.append("duplica040,1,duplica040")
    put("nogroup041", npy_bytes(good), s.MISSING_GROUP)
    rows[-1] = "nogroup041,1,  "
    # ---- truth-CSV rows (g2net.truth_csv): one id listed twice with different values, or twice the same ----
    truth_header = (raw / "injections.csv").read_text().splitlines()[0].split(",")
    truth_rows = []
    for uid, snrs, outcome in (
        ("truthdif43", ("5.0", "6.0"), s.DUPLICATE_TRUTH_ROW),
        ("truthsam44", ("7.5", "7.5"), WRITTEN),
    ):
        put(uid, npy_bytes(noise), outcome, label="0")
        for snr in snrs:
            fields = {**dict.fromkeys(truth_header, ""), "id": uid, "source_id": uid, "target": "0", "snr": snr}
            truth_rows.append(",".join(fields[c] for c in truth_header))
    with open(raw / "injections.csv", "a") as handle:
        handle.write("\n".join(truth_rows) + "\n")
    data = "\n".join(rows).encode() + b"\n"
    # ---- rows that are not rows: a wrong field count, a non-UTF-8 byte ----
    data += b"too,many,fields,here\n" + b"bad\xffbyte42,1,bad\xffbyte42\n"
    with open(raw / "training_labels.csv", "ab") as handle:
        handle.write(data)
    return expected
