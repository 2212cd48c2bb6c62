"""Every input the app accepts is bounded (issue 7, items 13-15): a new field without a bound fails here.

Walks the OpenAPI document of serving.app.create_app (parameters and request bodies, through
every $ref) and the event contract's models (the batch route takes events as free objects and
validates them against those): every string has a maxLength, every integer a minimum and a maximum.
Responses are the server's own output and are not walked.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from platform_api.events.schemas import PROPERTIES, EventIn
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.robustness
# Strings whose format or enumeration bounds them already.
BOUNDED_FORMATS = {"date", "date-time", "uuid", "binary", "time", "duration"}


def unbounded(schema: dict[str, Any], where: str, defs: dict[str, Any], seen: frozenset[str]) -> Iterator[str]:
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            yield from unbounded(defs[name], f"{where}<{name}>", defs, seen | {name})
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from unbounded(sub, where, defs, seen)
    kind = schema.get("type")
    keys = set(schema)
    if kind == "string" and not keys & {"enum", "const", "maxLength"} and schema.get("format") not in BOUNDED_FORMATS:
        yield f"{where}: string without maxLength"
    if kind == "integer" and not (keys & {"minimum", "exclusiveMinimum"} and keys & {"maximum", "exclusiveMaximum"}):
        yield f"{where}: integer without minimum and maximum"
    for name, sub in schema.get("properties", {}).items():
        yield from unbounded(sub, f"{where}.{name}", defs, seen)
    if isinstance(schema.get("items"), dict):
        yield from unbounded(schema["items"], f"{where}[]", defs, seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from unbounded(schema["additionalProperties"], f"{where}{{}}", defs, seen)


def openapi_inputs(doc: dict[str, Any]) -> Iterator[str]:
    defs = doc.get("components", {}).get("schemas", {})
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                where = f"{method.upper()} {path} {param['in']}.{param['name']}"
                yield from unbounded(param.get("schema", {}), where, defs, frozenset())
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                where = f"{method.upper()} {path} body({media})"
                yield from unbounded(content.get("schema", {}), where, defs, frozenset())


def test_every_input_of_every_route_is_bounded(tmp_path: Path) -> None:
    doc = create_app(ServingSettings(FITREC_DATA_DIR=tmp_path)).openapi()
    assert len(doc["paths"]) > 40  # the whole app, not a part of it
    assert list(openapi_inputs(doc)) == []


def test_every_field_of_the_event_contract_is_bounded() -> None:
    found: list[str] = []
    for name, model in {"envelope": EventIn, **PROPERTIES}.items():
        schema = model.model_json_schema()
        found += unbounded(schema, name, schema.get("$defs", {}), frozenset())
    assert found == []


def test_the_walker_finds_an_unbounded_field() -> None:
    schema = {
        "properties": {
            "ok": {"type": "string", "maxLength": 5},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
            "n": {"type": "integer", "minimum": 0},
        }
    }
    defs = {"Tag": {"type": "string"}}
    assert sorted(unbounded(schema, "X", defs, frozenset())) == [
        "X.n: integer without minimum and maximum",
        "X.note: string without maxLength",
        "X.tags[]<Tag>: string without maxLength",
    ]
