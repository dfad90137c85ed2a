"""The base of every config schema: the refusal a bad config raises, and the strict pydantic model (unknown keys,
NaN/inf and a YAML boolean read as a number all refused). No Beam, no TensorFlow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from transforms.errors import SigforgeError


class ConfigError(SigforgeError, ValueError):
    """A config file or override is invalid; the message names the offending key."""

    code = "config"


class _Strict(BaseModel):
    """Unknown keys refused, NaN/inf refused for every float, and a YAML boolean never read as a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_as_number(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, bool) and not _accepts_bool(field.annotation):
                    raise ValueError(f"'{name}' must be {_type_name(field.annotation)}, not the boolean {value}")
        return data


def _accepts_bool(annotation: Any) -> bool:
    return annotation is bool or annotation is Any or bool in getattr(annotation, "__args__", ())


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)
