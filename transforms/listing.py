"""Listing of a local input folder that misses nothing silently (no Beam: the build and the audit's recount share it).

``os.walk`` (and so Beam's local matcher) skips a folder it cannot list without a word, and never enters a
symlinked folder; a symlinked folder followed blindly can loop forever. ``walk(root)`` lists every entry below
``root`` and reports, as ``Fault``s, what it could not list:

* ``unreadable_folder``: a folder that cannot be listed (no read permission, an I/O error); its files are unknown;
* ``symlink_loop``: a symlinked folder that leads back into what is listed (a loop to one of its parents, a second
  path to a folder already listed, or a folder above the root such as ``/``): not followed, so that no file is
  listed twice and the walk ends.

Every other symlinked folder is followed (its files are listed under the link's path), so data laid out with
symlinks is read. Entries and faults come sorted, so that the listing does not depend on directory order.
"""

from __future__ import annotations

import errno
import os
import re
from typing import NamedTuple

UNREADABLE_FOLDER = "unreadable_folder"
SYMLINK_LOOP = "symlink_loop"
_GONE = (errno.ENOENT, errno.ENOTDIR)  # nothing to list (a missing root, a folder removed while listed)


class Fault(NamedTuple):
    """A folder the listing could not (or would not) enter: its path, the reason and a detail for people."""

    path: str
    reason: str
    detail: str


class Entry(NamedTuple):
    """One entry below the root: its path and whether it is a folder (a followed symlinked folder included)."""

    path: str
    is_folder: bool


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def walk(root: str) -> tuple[list[Entry], list[Fault]]:
    """Every entry below the local folder ``root`` (recursively, symlinked folders followed once) and the folders
    that could not be listed or followed (module docstring). A missing ``root`` lists nothing."""
    entries: list[Entry] = []
    faults: list[Fault] = []
    followed = [os.path.realpath(root)]  # the real folders whose trees are being listed

    def unreadable(error: OSError) -> None:
        if error.errno not in _GONE:
            faults.append(Fault(str(error.filename), UNREADABLE_FOLDER, f"cannot list this folder: {error.strerror}"))

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        dirs.sort()
        enter = []
        for name in dirs:
            path = os.path.join(folder, name)
            entries.append(Entry(path, True))
            if os.path.islink(path):
                target = os.path.realpath(path)
                if any(_inside(target, real) or _inside(real, target) for real in followed):
                    faults.append(
                        Fault(
                            path,
                            SYMLINK_LOOP,
                            f"symlinked folder to {target}, which is listed already (or holds what is): not followed",
                        )
                    )
                    continue
                followed.append(target)
            enter.append(name)
        dirs[:] = enter
        entries.extend(Entry(os.path.join(folder, name), False) for name in files)
    return sorted(entries), sorted(faults)


def glob_root(pattern: str) -> str:
    """The folder to walk for the local glob ``pattern``: the part before its first wildcard, cut back to a
    folder (``/in/train/**/*.npy`` -> ``/in/train/``); the pattern itself when it has no wildcard."""
    root = re.match(r"^[^[*?]*", pattern).group(0)
    return root if root.endswith("/") or root == pattern else os.path.dirname(root) or "."
