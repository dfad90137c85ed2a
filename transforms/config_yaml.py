"""Config files read as YAML with limits: a size cap, a depth cap, no anchors or aliases (a small file cannot
expand into gigabytes), regular files only; and a file that does not look like a sigforge config is refused
by its path alone, never by echoing its content. No Beam, no TensorFlow."""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Mapping
from typing import Any

import yaml

from transforms.config_base import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; a bigger file is not one (or is an attack)
MAX_YAML_DEPTH = 64  # nested mappings / lists; PyYAML's composer recurses (5000 levels: RecursionError)


class _YamlSyntax(ValueError):
    """A YAML syntax error as ``problem (line L, column C)``: never the text of the line (PyYAML quotes it)."""


def _syntax(error: yaml.YAMLError) -> _YamlSyntax:
    problem = getattr(error, "problem", None) or type(error).__name__
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return _YamlSyntax(" ".join(str(problem).split()) + where)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` as YAML, with limits: aliases are refused (ConfigError code ``yaml_alias``: a 2 KB "billion laughs"
    file of nested aliases would otherwise expand to 10^9 nodes when copied or validated), nesting deeper than
    ``MAX_YAML_DEPTH`` is refused (code ``yaml_too_deep``). Raises ``_YamlSyntax`` for a syntax error. The
    events are checked before anything is built, so a refusal costs one pass over the text."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1
                raise ConfigError(
                    f"{source}: YAML aliases (*name, line {line}) are not allowed in sigforge configs; "
                    "write the value out (or use extends: / --set)",
                    code="yaml_alias",
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    line = event.start_mark.line + 1
                    raise ConfigError(
                        f"{source}: nested more than {MAX_YAML_DEPTH} levels deep (line {line})",
                        code="yaml_too_deep",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _syntax(error) from None


def _read_config_text(path: str) -> str:
    """The text of the config file ``path``: a regular file (a FIFO would block, a device never end) of at most
    ``MAX_CONFIG_BYTES``; ConfigError (codes ``not_a_regular_file``, ``config_too_large``) otherwise."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config {path} is not a regular file", code="not_a_regular_file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is larger than {MAX_CONFIG_BYTES} bytes: not a sigforge config", code="config_too_large"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {error.start})", code="not_a_config") from None


def read_yaml(path: str) -> dict[str, Any]:
    """Reads a YAML mapping from a local path (configs are small and live beside the code), with the limits of
    ``parse_yaml`` and ``_read_config_text``."""
    text = _read_config_text(path)
    return yaml_mapping(text, path)


def yaml_mapping(text: str, path: str) -> dict[str, Any]:
    """The YAML mapping in ``text`` (read from ``path``); {} for an empty text; ConfigError otherwise."""
    try:
        data = parse_yaml(text, f"config {path}")
    except _YamlSyntax as error:
        raise ConfigError(f"config {path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid config {path}: config key '<root>': top level must be a mapping, got {type(data).__name__}"
        )
    return data


def check_looks_like_config(raw: Mapping[str, Any], path: str, known: set[str]) -> None:
    """Refuses (code ``not_a_config``, naming only ``path``) a YAML mapping that is not a sigforge config, so that
    its keys are never quoted in "unknown key" errors (``--config /some/secret`` must not print its lines).

    The rule: a file is a config when it is empty, or one of its top-level keys is a key of the schema (or
    ``extends``), or every top-level key is a near miss of one (a typo gets its did-you-mean)."""
    keys = [str(key) for key in raw]
    if not keys or any(key in known for key in keys):
        return
    if all(difflib.get_close_matches(key, sorted(known), n=1) for key in keys):
        return
    raise ConfigError(
        f"config {path} is not a sigforge config (none of its top-level keys is one of {sorted(known)}); "
        "its content is not shown",
        code="not_a_config",
    )
