"""The audit's independent recount of a TCE build's raw inputs: every TCE-table row and every light-curve file.

The build's ``seen`` counts decisions (examples and drops: transits, out-of-transit slots, files, rows), which
cannot be recounted without redoing the science; its raw inputs can. The units are the two kinds of input the
build reads, and each must end in the dataset or in ``rejected/build.csv``:

* a **TCE-table row** that does not parse (a malformed or non-UTF-8 row, a bad period, an empty disposition) is a
  rejection named ``tce_csv:<its first 80 characters>`` (one per such row);
* a **TCE** (a row that parses, by ``tce_uid``) has a written example with its ``tce_uid``, or a rejection of its
  own (``tce_uid``: no light curve, no transit observed; ``<tce_uid>_t_<time>`` / ``<tce_uid>_oot_...``: one of
  its transits or out-of-transit slots), or its star's ``target:<id>`` rejection (an unexpected error); each
  extra row of one ``tce_uid`` is one ``duplicate_tce`` rejection;
* a **folder** below ``tce.fits_glob`` that cannot be listed, or a symlinked folder that loops, is rejected by its
  path (``transforms/listing.py``);
* a **light-curve file** matched by ``tce.fits_glob`` is rejected by its path, or belongs (by the target id in
  its headers, read as the build reads it) to a star with a TCE that parses: that star's TCEs are checked above.
  A file that is not a regular file is never opened here (a FIFO would block).

So a TCE or a star removed from every stage with every count adjusted, or a rejection row removed, is found.
Limit: a file of a star with TCEs that the build rejected on its own (e.g. ``empty_light_curve``) is not told apart
from one it used, if its rejection row is removed (that would need the whole file read and cleaned again).
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from transforms.contract import RejectedInput
from transforms.csv_rows import data_lines, decode_csv_line, header_record, parse_csv_line, parse_header, row_key
from transforms.paths import input_file
from transforms.recipes.tce import fits_io, tce_table
from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.schema import DUPLICATE_TCE

TCE_ROW = "tce_csv"  # rejections of TCE-table rows are named tce_csv:<row text>
TARGET_KEY = "target:"  # an unexpected error for a whole star is named target:<id>
_DROP_SUFFIX = re.compile(r"_(?:t|oot)_[^_]*$")  # <tce_uid>_t_<time>, <tce_uid>_oot_<time>, <tce_uid>_oot_slot<k>


def tce_of(name: str) -> str:
    """The TCE a drop's name belongs to: ``"11-1_t_123.4567"`` -> ``"11-1"`` (other names unchanged)."""
    return _DROP_SUFFIX.sub("", name)


def _plain(path: str) -> str:
    return path.removeprefix("file://")


def _regular(path: str) -> bool:
    """Locally: a regular file (after symlinks). Object stores hold only objects."""
    if "://" in path and not path.startswith("file://"):
        return True
    try:
        return stat.S_ISREG(os.stat(_plain(path)).st_mode)
    except OSError:
        return False


def _star_of(fs: Any, path: str, cfg: TceConfig) -> str | None:
    """The target id in a light curve's headers, or None when the build would have rejected the file."""
    if not _regular(path):
        return None
    try:
        with fs.open_read(path) as handle:
            return fits_io.read_target_id(handle.read, path, cfg)
    except (RejectedInput, OSError):
        return None


def unaccounted_inputs(
    config: Any,
    input_dir: str,
    fs: Any,
    written_rows: Iterable[Mapping[str, str]],
    rejected_rows: Iterable[Mapping[str, str]],
) -> list[str]:
    """The raw inputs of a TCE build that are neither written nor rejected (see the module docstring)."""
    from transforms.audit_inputs import match_inputs

    cfg: TceConfig = config.section
    rejected = list(rejected_rows)
    named = Counter(_plain(r.get("uid_or_path", "")) for r in rejected)
    duplicates = Counter(r.get("uid_or_path", "") for r in rejected if r.get("reason") == DUPLICATE_TCE)
    dropped = {tce_of(r.get("uid_or_path", "")) for r in rejected if r.get("reason") != DUPLICATE_TCE}
    written = {row.get("tce_uid", "") for row in written_rows}

    table = input_file(input_dir, cfg.tce_csv, "tce.tce_csv")
    data = fs.read_bytes(table)
    header = parse_header(header_record(data))
    bad_rows: Counter[str] = Counter()
    rows_per_tce: Counter[str] = Counter()
    star_of_tce: dict[str, str] = {}
    for line in data_lines(data):
        try:
            tce = tce_table.parse_tce(parse_csv_line(decode_csv_line(line), header), cfg)
        except RejectedInput:
            bad_rows[row_key(TCE_ROW, line)] += 1
            continue
        rows_per_tce[tce.tce_uid] += 1
        star_of_tce[tce.tce_uid] = tce.target_id

    missing = [f"TCE-table row {key!r}" for key, n in sorted(bad_rows.items()) if named[key] < n]
    for uid, n in sorted(rows_per_tce.items()):
        if uid not in written and uid not in dropped and not named[TARGET_KEY + star_of_tce[uid]]:
            missing.append(f"TCE {uid}")
        if duplicates[uid] < n - 1:
            missing.append(f"TCE {uid} ({n} table rows, {duplicates[uid]} rejected as {DUPLICATE_TCE})")
    stars = set(star_of_tce.values())
    paths, unlisted = match_inputs(fs, input_dir, cfg.fits_glob)
    missing += [f"folder {path} (not listed)" for path in unlisted if not named[_plain(path)]]
    for path in paths:
        if named[_plain(path)]:
            continue
        star = _star_of(fs, path, cfg)
        if star is None or (star not in stars and not named[TARGET_KEY + star]):
            missing.append(f"light curve {path}")
    return missing
