"""Why a TCE's star has no light curve: what the build found under ``--input``, in one rejection detail.

The build counts, over the whole input, the files ``tce.fits_glob`` matched, those whose star id could be read,
and the distinct ids (keeping the smallest few); a TCE whose star is not among them is rejected as
``tce_without_light_curve`` with a detail naming the glob, those counts, a few of the ids found and where the ids
were looked for (header keys or file-name pattern), so a mismatch of glob, id keys or id format shows at once.
The accumulator functions are the Beam CombineFn's (beam_pipelines/recipes/tce/build.py); pure Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from transforms.recipes.tce.config import TceConfig
from transforms.recipes.tce.fits_io import id_source

SAMPLE_SIZE = 5  # star ids named in a detail
MATCHED, KEYED, TARGET, UNLISTED = "matched", "keyed", "target", "unlisted"  # the kinds of item counted


@dataclass(frozen=True)
class FilesFound:
    """What the build found: files matched by the glob, of them with a star id, distinct ids and a few of them."""

    matched: int = 0
    keyed: int = 0
    targets: int = 0
    sample: tuple[str, ...] = ()
    unlisted: int = 0  # folders below the glob that could not be listed or followed


def _id_order(target_id: str) -> tuple[int, int, str]:
    return (0, int(target_id), "") if target_id.isdigit() else (1, 0, target_id)


def add_found(found: FilesFound, kind: str, value: str = "") -> FilesFound:
    """``found`` plus one item: a matched file, a file with a star id, a distinct star id (``TARGET``), or a
    folder that could not be listed (``UNLISTED``)."""
    if kind == MATCHED:
        return FilesFound(found.matched + 1, found.keyed, found.targets, found.sample, found.unlisted)
    if kind == KEYED:
        return FilesFound(found.matched, found.keyed + 1, found.targets, found.sample, found.unlisted)
    if kind == UNLISTED:
        return FilesFound(found.matched, found.keyed, found.targets, found.sample, found.unlisted + 1)
    sample = tuple(sorted({*found.sample, value}, key=_id_order)[:SAMPLE_SIZE])
    return FilesFound(found.matched, found.keyed, found.targets + 1, sample, found.unlisted)


def merge_found(parts: Iterable[FilesFound]) -> FilesFound:
    parts = list(parts)
    sample = sorted({i for p in parts for i in p.sample}, key=_id_order)[:SAMPLE_SIZE]
    return FilesFound(
        sum(p.matched for p in parts),
        sum(p.keyed for p in parts),
        sum(p.targets for p in parts),
        tuple(sample),
        sum(p.unlisted for p in parts),
    )


def no_light_curve_detail(
    target_id: str, cfg: TceConfig, glob: str, found: FilesFound, own_rejections: Sequence[str] = ()
) -> str:
    """The detail of a ``tce_without_light_curve`` rejection of star ``target_id``.

    ``glob``: the pattern matched (``--input`` joined with ``tce.fits_glob``); ``own_rejections``: the reasons the
    star's own files (found by id) were rejected, when it had some.
    """
    if own_rejections:
        reasons = ", ".join(f"{reason} {n}" for reason, n in Counter(own_rejections).most_common())
        return (
            f"target {target_id} has {len(own_rejections)} light-curve file(s), none readable ({reasons}); "
            "see those files' rows"
        )
    text = f"no light curve for target {target_id}: tce.fits_glob {glob!r} matched {found.matched} file(s)"
    if found.unlisted:
        text = (
            f"{text} ({found.unlisted} folder(s) below it could not be listed, the star's files may be there: see "
            "their unreadable_folder / symlink_loop rows)"
        )
    if found.matched == 0:
        return text + "; check --input and tce.fits_glob"
    if found.targets == 0:
        return text + f", none with a target id (looked in {id_source(cfg)}); see their rows"
    more = ", ..." if found.targets > len(found.sample) else ""
    return (
        text + f", {found.keyed} with a target id, {found.targets} distinct target id(s) "
        f"({', '.join(found.sample)}{more}), none {target_id}; ids from {id_source(cfg)}"
    )
