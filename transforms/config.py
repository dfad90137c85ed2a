"""One config schema for every dataset recipe, loaded from YAML and validated before any work.

The schema is pydantic (v2) with ``extra="forbid"`` everywhere, so an unknown or misspelled key is refused with
a message that names the dotted key (and suggests the closest valid one). ``--set dotted.key=value`` overrides
are applied to the raw YAML mapping *before* validation, so they are validated exactly like file values.

This module has no Beam and no TensorFlow imports: the trainer (``model/``) reuses the loader.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from transforms import splitting
from transforms.config_base import ConfigError, _Strict  # noqa: F401  (re-exported)
from transforms.config_yaml import (  # noqa: F401  (re-exported: the trainer and profiles load YAML the same way)
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    _YamlSyntax,
    check_looks_like_config,
    parse_yaml,
    read_yaml,
    yaml_mapping,
)


class BuildConfig(_Strict):
    """Build stage settings every recipe shares; the recipe's own inputs live in its section (``g2net:``...)."""

    examples_per_shard: int = Field(1000, ge=1)
    # Threads per worker process for the recipe's batched numeric preprocessing (numpy/scipy release the GIL
    # there); 0 = as many as the cores this process may use, 1 = none (all work on the DoFn's own thread).
    numeric_threads: int = Field(0, ge=0)


class SplitConfig(_Strict):
    """Split stage, by target (docs/splits.md): ``mode`` hash (sha256 buckets of ``fractions``), kfold (``k`` folds,
    ``stratify`` by label, iterations by ``cv_val``) or temporal (``time_column``, ``cuts`` or ``fractions``)."""

    mode: Literal["hash", "kfold", "temporal"] = "hash"
    fractions: dict[Literal["train", "val", "test"], float] = {"train": 0.8, "val": 0.1, "test": 0.1}
    salt: str = "sigforge-v1"
    examples_per_shard: int = Field(1000, ge=1)
    k: int = Field(10, ge=2, le=100)
    stratify: bool = False
    cv_val: Literal["next", "none"] = "next"
    time_column: str | None = None
    cuts: list[float] | None = None

    @pydantic.model_serializer(mode="wrap")
    def _own_keys(self, handler) -> dict[str, Any]:  # a hash split's dump (and config_sha256) as before the modes
        return splitting.own_mode_keys(handler(self), self.mode)

    @model_validator(mode="after")
    def _mode_keys(self) -> SplitConfig:
        if problem := splitting.mode_problem(self, type(self).model_fields):
            raise ValueError(problem)
        return self

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(math.isfinite(v) for v in value.values()):
            raise ValueError(f"fractions must be finite numbers, got {value}")
        if any(v < 0 for v in value.values()):
            raise ValueError(f"fractions must be non-negative, got {value}")
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1, got {total:.6g} from {value}")
        if value.get("train", 0.0) <= 0:
            raise ValueError("the train fraction must be positive")
        return value


class AnalyzeConfig(_Strict):
    """Analyze stage: full-pass statistics on the train split with tf.Transform."""

    max_examples_per_group: int | None = Field(None, ge=1)
    # The bytes feature that groups examples for the cap: target_id, or one the recipe declares (tce_uid).
    cap_group_column: str = "target_id"


_CONDITION_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
ORDER_OPS = ("<", "<=", ">", ">=")


class FilterCondition(_Strict):
    """One declarative filter condition; exactly one kind of test is set. An example is kept iff it passes.

    - ``labels: [0, 1]``: the example's label is in the list;
    - ``column`` + ``op`` + ``value``: a data-table column compared with ``value`` (numeric for a number,
      string equality for a string with ``==``/``!=``);
    - ``target_ids_file`` (+ ``keep_listed``): the target id is (``keep_listed: true``) or is not (``false``)
      one of the ids listed in the file, one per line.
    """

    name: str
    labels: list[int] | None = None
    column: str | None = None
    op: Literal["<", "<=", ">", ">=", "==", "!="] | None = None
    value: float | str | None = None
    target_ids_file: str | None = None
    keep_listed: bool = True

    @model_validator(mode="after")
    def _one_kind_of_test(self) -> FilterCondition:
        if not _CONDITION_NAME.match(self.name):
            raise ValueError(f"condition name {self.name!r} must be non-empty letters, digits, '_', '.' or '-'")
        kinds = [
            kind
            for kind, is_set in (
                ("labels", self.labels is not None),
                ("column/op/value", any(v is not None for v in (self.column, self.op, self.value))),
                ("target_ids_file", self.target_ids_file is not None),
            )
            if is_set
        ]
        if len(kinds) != 1:
            raise ValueError(
                f"condition '{self.name}': set exactly one kind of test (labels, column+op+value or "
                f"target_ids_file), got {', '.join(kinds) or 'none'}"
            )
        if self.labels is not None and not self.labels:
            raise ValueError(f"condition '{self.name}': labels must list at least one label")
        if kinds[0] == "column/op/value":
            missing = [k for k in ("column", "op", "value") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"condition '{self.name}': column, op and value go together; missing {missing}")
            if self.op in ORDER_OPS and isinstance(self.value, str):
                try:
                    float(self.value)
                except ValueError:
                    raise ValueError(
                        f"condition '{self.name}': op '{self.op}' needs a numeric value, got {self.value!r}"
                    ) from None
        if not self.keep_listed and self.target_ids_file is None:
            raise ValueError(f"condition '{self.name}': keep_listed: false only applies with target_ids_file")
        return self


class FilterConfig(_Strict):
    """Filter stage: declarative conditions over normalized examples (all must pass to keep an example)."""

    conditions: list[FilterCondition] = []
    examples_per_shard: int = Field(1000, ge=1)

    @field_validator("conditions")
    @classmethod
    def _unique_names(cls, value: list[FilterCondition]) -> list[FilterCondition]:
        names = [c.name for c in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"condition names must be unique, repeated: {duplicates}")
        return value


class DatasetConfig(_Strict):
    """A dataset recipe: the common stage sections plus the recipe's own section, under the recipe's name.

    ``recipe: tce`` selects the registered recipe ``tce`` and with it the schema of the ``tce:`` section (the way
    ``model.architecture`` selects the trainer's network schema). Validation builds the concrete class for the
    recipe (``DatasetConfig.for_recipe``); ``section`` is the recipe's validated section.
    """

    name: str = "dataset"
    recipe: str = "g2net"
    build: BuildConfig = BuildConfig()
    split: SplitConfig = SplitConfig()
    analyze: AnalyzeConfig = AnalyzeConfig()
    filter: FilterConfig | None = None

    @property
    def section(self) -> Any:
        """The recipe's own config section (e.g. ``G2NetConfig`` for ``recipe: g2net``)."""
        return getattr(self, self.recipe)

    @classmethod
    def for_recipe(cls, recipe: str) -> type[DatasetConfig]:
        """The concrete schema for ``recipe``: this class plus a field named after the recipe, of its section."""
        return _recipe_model(recipe)

    @classmethod
    def concrete_model(cls, raw: Mapping[str, Any]) -> type[DatasetConfig]:
        """The schema a raw mapping is validated against: chosen by its ``recipe`` key (default g2net)."""
        if cls is not DatasetConfig:
            return cls
        recipe = raw.get("recipe", cls.model_fields["recipe"].default)
        from transforms.recipes import REGISTRY

        if not isinstance(recipe, str) or recipe not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            close = difflib.get_close_matches(str(recipe), list(REGISTRY), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"config key 'recipe': unknown recipe {recipe!r}{hint}; registered: {known}")
        return _recipe_model(recipe)


@functools.cache
def _recipe_model(recipe: str) -> type[DatasetConfig]:
    from transforms.recipes import REGISTRY

    section = REGISTRY[recipe].config_class
    return create_model(
        f"DatasetConfig_{recipe}",
        __base__=DatasetConfig,
        __module__=__name__,
        **{recipe: (section, Field(default_factory=section))},
    )


def __getattr__(name: str) -> Any:
    """``DatasetConfig_<recipe>`` by name, so a pickled concrete config resolves in a fresh worker process."""
    if name.startswith("DatasetConfig_"):
        return _recipe_model(name[len("DatasetConfig_") :])
    raise AttributeError(name)


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parses one ``dotted.key=value`` override; the value is read as YAML (``0.5``, ``true``, ``[1, 2]``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    source = f"override {key.strip()!r}"
    try:
        value = parse_yaml(raw, source) if raw.strip() else ""
    except _YamlSyntax as error:
        raise ConfigError(
            f"override {text!r}: config key '{'.'.join(parts)}': value is not valid YAML ({error})"
        ) from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Returns a copy of ``raw`` with each ``dotted.key=value`` set (intermediate mappings are created)."""
    result = _deep_copy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: '{'.'.join(parts[: depth + 1])}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (the parent of the offending key), for did-you-mean hints."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def format_validation_error(error: ValidationError, model: type[BaseModel], source: str) -> str:
    lines = [f"invalid config {source}:"]
    for item in error.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
            close = difflib.get_close_matches(str(loc[-1]), _valid_keys(model, loc[:-1]), n=1)
            if close:
                message += f" (did you mean '{close[0]}'?)"
        lines.append(f"  config key '{key}': {message}")
    return "\n".join(lines)


def validate(model: type[_ModelT], raw: Mapping[str, Any], source: str = "<dict>") -> _ModelT:
    """Validates a raw mapping against ``model``; raises ConfigError naming every bad key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"invalid config {source}: top level must be a mapping, got {type(raw).__name__}")
    concrete = getattr(model, "concrete_model", None)
    if concrete is not None:
        model = concrete(raw)
    try:
        return model.model_validate(dict(raw))
    except ValidationError as error:
        unknown = all(item["type"] == "extra_forbidden" for item in error.errors())  # only misspelled keys
        raise ConfigError(
            format_validation_error(error, model, source), code="unknown_key" if unknown else None
        ) from None


# Limits of every YAML text sigforge reads (configs, ``extends:`` bases, ``--set`` values, runner profiles).
def top_level_keys(model: type[BaseModel]) -> set[str]:
    """The keys a config of ``model`` may hold at its top level (a dataset config: every recipe's section too)."""
    keys = set(model.model_fields)
    if issubclass(model, DatasetConfig):
        from transforms.recipes import REGISTRY

        keys |= set(REGISTRY)
    return keys


def load_config(
    model: type[_ModelT], path: str | None = None, overrides: Iterable[str] = (), extends_key: str = "extends"
) -> _ModelT:
    """Loads ``path`` (optionally ``extends:`` another YAML file beside it), applies overrides, validates.

    ``extends: base.yaml`` lets a derived recipe restate only what it changes; the base is merged first. ``~``
    and ``$VARS`` in ``path`` and in ``extends:`` are expanded (``transforms.paths.expand_path``).
    """
    from transforms.paths import expand_path

    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = expand_path(path, "config")
        raw = _read_with_base(path, extends_key, known=top_level_keys(model) | {extends_key})
        source = path
    raw = apply_overrides(raw, overrides)
    return validate(model, raw, source)


def _read_with_base(
    path: str, extends_key: str, chain: tuple[str, ...] = (), known: set[str] | None = None
) -> dict[str, Any]:
    resolved = str(Path(path).resolve())
    if resolved in chain:
        loop = " -> ".join([*chain[chain.index(resolved) :], resolved])
        raise ConfigError(f"config key '{extends_key}': extends loop {loop}")
    raw = read_yaml(path)
    if known is not None:
        check_looks_like_config(raw, path, known)
    base_name = raw.pop(extends_key, None)
    if base_name is None:
        return raw
    if not isinstance(base_name, str) or not base_name:
        raise ConfigError(f"config {path}: config key '{extends_key}' must be a file name, got {base_name!r}")
    from transforms.paths import expand_path

    base_name = expand_path(base_name, f"config {path}: config key '{extends_key}'")
    base = _read_with_base(str(Path(path).parent / base_name), extends_key, (*chain, resolved), known)
    return _merge(base, raw)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = _deep_copy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = _deep_copy(value)
    return merged
