"""What the validation suites check, read from the event contract's pydantic models.

Deriving the specs from `platform_api.events.schemas` keeps the suites and the API
in step: a bound or an enum changed in the contract changes the suite with it.
"""

import types
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from platform_api.events.schemas import (
    EVENT_TYPES,
    ITEM_REQUIRED_TYPES,
    MAX_AGE,
    MAX_FUTURE_SKEW,
    PROPERTIES,
    USERLESS_TYPES,
    EventIn,
)

__all__ = [
    "EVENT_TYPES",
    "ITEM_REQUIRED_TYPES",
    "MAX_AGE",
    "MAX_FUTURE_SKEW",
    "USERLESS_TYPES",
    "FieldSpec",
    "envelope_max_length",
    "property_specs",
]

# How a property is stored once flattened; the transform parses JSON text into these.
Kind = Literal["int", "float", "str", "date", "datetime", "list", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    required: bool
    default: Any = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    enum: tuple[str, ...] | None = None

    @property
    def has_range(self) -> bool:
        return any(v is not None for v in (self.ge, self.gt, self.le, self.lt))


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """Strip Optional[...] and Annotated[...], collecting constraint metadata on the way."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *extra = get_args(annotation)
            for item in extra:
                metadata = metadata + (list(item.metadata) if isinstance(item, FieldInfo) else [item])
            annotation = base
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"unsupported union in the event contract: {annotation}")
            annotation = args[0]
        else:
            return annotation, metadata


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...] | None]:
    origin = get_origin(annotation)
    if origin is Literal:
        return "str", tuple(str(v) for v in get_args(annotation))
    if origin is list:
        return "list", None
    # bool before int: bool is a subclass of int.
    for py, kind in (
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        (datetime, "datetime"),
        (date, "date"),
    ):
        if annotation is py:
            return kind, None  # type: ignore[return-value]
    raise TypeError(f"unsupported type in the event contract: {annotation}")


def _spec(name: str, info: FieldInfo) -> FieldSpec:
    annotation, metadata = _unwrap(info.annotation, list(info.metadata))
    kind, enum = _kind(annotation)
    bounds: dict[str, Any] = {}
    for item in metadata:
        for attr, cls in (
            ("ge", at.Ge),
            ("gt", at.Gt),
            ("le", at.Le),
            ("lt", at.Lt),
            ("min_length", at.MinLen),
            ("max_length", at.MaxLen),
        ):
            if isinstance(item, cls):
                bounds[attr] = getattr(item, attr)
    if info.is_required():
        default = None
    elif info.default_factory is not None:
        default = info.default_factory()  # type: ignore[call-arg]
    else:
        default = None if info.default is PydanticUndefined else info.default
    return FieldSpec(name=name, kind=kind, required=info.is_required(), default=default, enum=enum, **bounds)


def property_specs(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    return tuple(_spec(name, info) for name, info in model.model_fields.items())


def envelope_max_length(field: str) -> int | None:
    _, metadata = _unwrap(EventIn.model_fields[field].annotation, list(EventIn.model_fields[field].metadata))
    return next((m.max_length for m in metadata if isinstance(m, at.MaxLen)), None)


SPECS: dict[str, tuple[FieldSpec, ...]] = {}


def specs_of(event_type: str) -> tuple[FieldSpec, ...]:
    if event_type not in SPECS:
        SPECS[event_type] = property_specs(PROPERTIES[event_type])
    return SPECS[event_type]
