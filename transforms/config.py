"""One config schema for every dataset recipe, loaded from YAML and validated before any work.

The schema is pydantic (v2) with ``extra="forbid"`` everywhere, so an unknown or misspelled key is refused with
a message that names the dotted key (and suggests the closest valid one). ``--set dotted.key=value`` overrides
are applied to the raw YAML mapping *before* validation, so they are validated exactly like file values.

This module has no Beam and no TensorFlow imports: the trainer (``model/``) reuses the loader.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandpassConfig(_Strict):
    """Zero-phase Butterworth bandpass applied per example in the build stage."""

    low_hz: float = Field(20.0, gt=0)
    high_hz: float = Field(500.0, gt=0)
    order: int = Field(8, ge=1, le=16)

    @model_validator(mode="after")
    def _ordered(self) -> BandpassConfig:
        if self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz ({self.low_hz}) must be below high_hz ({self.high_hz})")
        return self


class BuildConfig(_Strict):
    """Build stage: raw inputs -> raw shards + data tables (ARCHITECTURE.md section 3)."""

    labels_csv: str = "training_labels.csv"
    npy_glob: str = "train/**/*.npy"
    id_column: str = "id"
    label_column: str = "target"
    group_column: str = "id"
    truth_csv: str | None = None
    sample_rate_hz: float = Field(2048.0, gt=0)
    n_channels: int = Field(3, ge=1)
    n_samples: int = Field(4096, ge=16)
    bandpass: BandpassConfig = BandpassConfig()
    examples_per_shard: int = Field(1000, ge=1)


class SplitConfig(_Strict):
    """Split stage: sha256(target_id) -> train/val/test buckets."""

    fractions: dict[Literal["train", "val", "test"], float] = {"train": 0.8, "val": 0.1, "test": 0.1}
    salt: str = "sigforge-v1"
    examples_per_shard: int = Field(1000, ge=1)

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
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
    cap_group_column: Literal["target_id", "tce_uid"] = "target_id"
    psd_labels: list[int] = [0]
    tukey_alpha: float = Field(0.1, ge=0.0, le=1.0)


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


class TceColumns(_Strict):
    """Column names of the TCE table (DR25 / SPOC style); units are fixed: days, days, hours."""

    target_id: str = "target_id"  # star id (KIC / TIC), matched with the light curves' target id
    tce_id: str = "tce_plnt_num"  # TCE number within the target; tce_uid = "<target_id>-<tce_id>"
    period: str = "tce_period"  # orbital period, days
    epoch: str = "tce_time0bk"  # mid-time of a transit, days (see TceConfig.epoch_reference)
    duration: str = "tce_duration"  # transit duration, hours
    label: str = "label"  # disposition (PC, AFP, NTP, ...) or 0/1


class TceViewsConfig(_Strict):
    """Mode ``views``: AstroNet/ExoMiner-style phase-folded views per TCE."""

    global_bins: int = Field(301, ge=3)
    local_bins: int = Field(31, ge=3)
    # The local view spans +- this many transit durations around the transit (clipped to half a period).
    local_half_width_durations: float = Field(4.0, gt=0)
    odd_even: bool = True


class TceConfig(_Strict):
    """Light-curve (TCE) recipe: FITS light curves + TCE table -> transit windows or phase-folded views."""

    mode: Literal["transits", "views"] = "transits"
    fits_glob: str = "**.fits"  # relative to --input; "**" also matches no folder
    tce_csv: str = "tces.csv"  # relative to --input (or an absolute / gs:// path)
    columns: TceColumns = TceColumns()
    # Dispositions (or label values) that make label 1; everything else is 0. Compared case-insensitively.
    positive_labels: list[str] = ["PC", "CP", "KP", "1"]
    # "light_curve": epochs are in the light curve's time system (BKJD / BTJD); "bjd": full BJD, converted
    # with the FITS header's BJDREFI + BJDREFF.
    epoch_reference: Literal["light_curve", "bjd"] = "light_curve"
    # The star id: from the first header keyword present (primary header, then the table's), or the file name.
    target_id_source: Literal["header", "filename"] = "header"
    header_keys: list[str] = ["KEPLERID", "TICID"]
    filename_regex: str = r"^(?:kplr|tic|tess\d+-s\d+-)0*(\d+)"
    time_column: str = "TIME"
    flux_column: str = "PDCSAP_FLUX"
    flux_err_column: str | None = "PDCSAP_FLUX_ERR"
    quality_column: str | None = "SAP_QUALITY"
    # null: drop every cadence with a nonzero quality flag; an int: drop cadences with (flag & mask) != 0.
    quality_bitmask: int | None = None
    # Detrending: a robust (sigma-clipped) cubic spline per continuous segment, all TCEs' transits masked.
    gap_days: float = Field(0.5, gt=0)
    knot_spacing_days: float = Field(1.5, gt=0)
    clip_sigma: float = Field(3.0, gt=0)
    clip_iterations: int = Field(5, ge=1)
    # A transit's masked interval is mask_width_factor x its duration, centred on the mid-time.
    mask_width_factor: float = Field(1.5, ge=1.0)
    # Mode "transits": a window is window_durations x the TCE's duration wide, binned to n_bins.
    window_durations: float = Field(5.0, gt=1.0)
    n_bins: int = Field(100, ge=3)
    # Fraction of the expected cadences that must be present within the transit (else transit_in_gap) and
    # within the window (else window_low_coverage).
    min_transit_coverage: float = Field(0.5, ge=0.0, le=1.0)
    min_window_coverage: float = Field(0.5, ge=0.0, le=1.0)
    # Out-of-transit negatives per written transit window of each TCE, placed by sha256(oot_salt:tce_uid).
    oot_per_transit: float = Field(1.0, ge=0.0)
    oot_salt: str = "sigforge-oot"
    views: TceViewsConfig = TceViewsConfig()


class DatasetConfig(_Strict):
    """A dataset recipe: everything from raw inputs to normalized shards."""

    name: str = "dataset"
    recipe: Literal["g2net", "tce"] = "g2net"
    build: BuildConfig = BuildConfig()
    split: SplitConfig = SplitConfig()
    analyze: AnalyzeConfig = AnalyzeConfig()
    filter: FilterConfig | None = None
    # Light-curve settings; filled with the defaults for recipe "tce", refused for the other recipes.
    tce: TceConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _tce_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("recipe") == "tce" and data.get("tce") is None:
            return {**data, "tce": {}}
        return data

    @model_validator(mode="after")
    def _tce_only_for_tce(self) -> DatasetConfig:
        if self.tce is not None and self.recipe != "tce":
            raise ValueError(f"the 'tce' section only applies to recipe 'tce', not '{self.recipe}'")
        return self


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parses one ``dotted.key=value`` override; the value is read as YAML (``0.5``, ``true``, ``[1, 2]``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    return parts, yaml.safe_load(raw) if raw.strip() else ""


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
    try:
        return model.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, model, source)) from None


def read_yaml(path: str) -> dict[str, Any]:
    """Reads a YAML mapping from a local path (configs are small and live beside the code)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {error}") from None
    return data or {}


def load_config(
    model: type[_ModelT], path: str | None = None, overrides: Iterable[str] = (), extends_key: str = "extends"
) -> _ModelT:
    """Loads ``path`` (optionally ``extends:`` another YAML file beside it), applies overrides, validates.

    ``extends: base.yaml`` lets a derived recipe restate only what it changes; the base is merged first.
    """
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        raw = _read_with_base(path, extends_key)
        source = path
    raw = apply_overrides(raw, overrides)
    return validate(model, raw, source)


def _read_with_base(path: str, extends_key: str) -> dict[str, Any]:
    raw = read_yaml(path)
    base_name = raw.pop(extends_key, None)
    if base_name is None:
        return raw
    base = _read_with_base(str(Path(path).parent / base_name), extends_key)
    return _merge(base, raw)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = _deep_copy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = _deep_copy(value)
    return merged
