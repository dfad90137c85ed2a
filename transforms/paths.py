"""Paths as people write them: ``~`` and ``$VARS`` expanded in one place; globs kept inside ``--input``.

``expand_path`` is the only place where ``~``, ``~user``, ``$VAR`` and ``${VAR}`` are expanded: in the command
line's folder arguments (``--input``, ``--output``, ``audit OUT``...), in config file paths (``--config``,
``--profile``, ``extends:``) and in the file paths a config names (``g2net.labels_csv``, ``g2net.truth_csv``,
``tce.tce_csv``, ``filter...target_ids_file``). A variable that is not set or a user that does not exist is
refused (ConfigError code ``path_expansion``) instead of becoming a folder literally named ``$VAR`` or ``~``.

Input globs (``g2net.npy_glob``, ``tce.fits_glob``) are relative to ``--input`` and must stay inside it:
``input_glob`` refuses an absolute glob, a URL, a ``..`` part, ``~`` or a ``$`` (code ``glob_outside_input``).
"""

from __future__ import annotations

import os
import posixpath
import re

from transforms.config_base import ConfigError

PATH_EXPANSION = "path_expansion"
GLOB_OUTSIDE_INPUT = "glob_outside_input"
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")


def expand_path(value: str, what: str) -> str:
    """``value`` with ``$VAR`` / ``${VAR}`` and a leading ``~`` / ``~user`` expanded (a URL: variables only);
    ConfigError (code ``path_expansion``) naming ``what`` when a variable is not set or ``~user`` is unknown."""
    unset = sorted({m.group(1).strip("{}") for m in _VARIABLE.finditer(value)} - set(os.environ))
    if unset:
        raise ConfigError(
            f"{what} {value!r}: environment variable(s) {', '.join('$' + name for name in unset)} not set",
            code=PATH_EXPANSION,
        )
    expanded = os.path.expandvars(value)
    if "://" in expanded:
        return expanded
    expanded = os.path.expanduser(expanded)
    if expanded.startswith("~"):
        raise ConfigError(f"{what} {value!r}: no such user for '~'", code=PATH_EXPANSION)
    return expanded


def input_file(input_dir: str, value: str, key: str) -> str:
    """The file a config key names (``key`` = ``value``): expanded (``expand_path``), then relative to
    ``input_dir`` unless absolute or a URL."""
    path = expand_path(value, f"config key '{key}':")
    if "://" in path or path.startswith("/"):
        return path
    return posixpath.join(input_dir, path)


def check_input_glob(glob: str, key: str) -> str:
    """``glob`` when it stays inside ``--input``; ConfigError (code ``glob_outside_input``) naming ``key``
    otherwise: an absolute glob or URL, a ``..`` part, a ``~`` or a ``$`` (a glob is never expanded)."""
    parts = glob.replace("\\", "/").split("/")
    problem = (
        "is absolute"
        if glob.startswith("/")
        else "is a URL"
        if "://" in glob
        else "has a '..' part"
        if ".." in parts
        else "starts with '~'"
        if glob.startswith("~")
        else "holds a '$'"
        if "$" in glob
        else "is empty"
        if not glob.strip()
        else None
    )
    if problem is not None:
        raise ConfigError(
            f"config key '{key}': glob {glob!r} {problem}; input globs are relative to --input and stay inside it",
            code=GLOB_OUTSIDE_INPUT,
        )
    return glob
