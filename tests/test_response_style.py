"""One response style, held by the OpenAPI document: every property of every response body
is camelCase, every timestamp an ISO 8601 string (`format: date-time`), and every route
answers with a response model of `api/schemas/` (docs: README.md, Changelog 0.2.0).

The walk covers every schema a response reaches (nested models, lists, unions, maps);
request bodies keep their documented snake_case fields and are not walked. A live round
checks the bodies themselves, so a key the models do not declare cannot slip through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from agent_runtime.contract import ModelConfig
from api.app import app
from api.openapi import Error
from api.routes.compat import PATH_PREFIXES as COMPAT_PATHS
from api.schemas import compat as compat_schemas
from api.schemas.agents import AgentCreate, AgentOut, ModelOut
from api.schemas.base import ResponseModel, iso_from_ms
from api.store.events import iso_timestamp
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN

CAMEL_CASE = re.compile(r"^[a-z][a-zA-Z0-9]*$")
ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Maps whose keys are data, not property names: the client's own keys (metadata, dynamic
# variables), an event's payload as its source reported it, statuses (transitions).
DATA_MAPS = {"metadata", "dynamicVariables", "data", "transitions"}


def _is_timestamp_name(name: str) -> bool:
    return name == "timestamp" or name.endswith("At")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [*schema.get("anyOf", []), *schema.get("oneOf", []), *schema.get("allOf", [])]


def _is_date_time(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A date-time string, or a union of date-time strings and null."""
    schema = _resolve(document, schema)
    branches = _branches(schema)
    if branches:
        kinds = [b for b in branches if _resolve(document, b).get("type") != "null"]
        return bool(kinds) and all(_is_date_time(document, b) for b in kinds)
    return schema.get("type") == "string" and schema.get("format") == "date-time"


def _properties(
    document: dict[str, Any], schema: dict[str, Any], path: str, seen: set[int]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, name, schema) of every property `schema` reaches."""
    schema = _resolve(document, schema)
    if id(schema) in seen:
        return
    seen = seen | {id(schema)}
    for name, prop in schema.get("properties", {}).items():
        yield path, name, prop
        if name not in DATA_MAPS:
            yield from _properties(document, prop, f"{path}.{name}", seen)
    for branch in _branches(schema):
        yield from _properties(document, branch, path, seen)
    if isinstance(schema.get("items"), dict):
        yield from _properties(document, schema["items"], f"{path}[]", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _properties(document, schema["additionalProperties"], f"{path}{{}}", seen)


def _response_schemas(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if content is not None:
                    yield f"{method.upper()} {path} {status}", status, content["schema"]


def _style_violations(document: dict[str, Any]) -> list[str]:
    found = []
    for where, _, schema in _response_schemas(document):
        if where.split(" ")[1].startswith(COMPAT_PATHS):
            continue  # their vendors' shapes, as those vendors' clients read them
        for path, name, prop in _properties(document, schema, where, set()):
            if not CAMEL_CASE.match(name):
                found.append(f"{path}.{name}: not camelCase")
            elif _is_timestamp_name(name) and not _is_date_time(document, prop):
                found.append(f"{path}.{name}: a timestamp without format date-time")
    return found


def test_every_response_property_is_camel_case_and_every_timestamp_a_date_time() -> None:
    assert _style_violations(app.openapi()) == []


def test_the_walk_finds_snake_case_names_and_epoch_timestamps() -> None:
    """The walker itself: a document with the old shapes fails it, nested and in unions."""
    document = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/c/Old"}}}}
                    }
                }
            }
        },
        "c": {
            "Old": {
                "properties": {
                    "createdAt": {"type": "integer"},
                    "items": {"type": "array", "items": {"$ref": "#/c/Item"}},
                }
            },
            "Item": {
                "anyOf": [
                    {"properties": {"sip_trunk_id": {"type": "string"}}},
                    {
                        "properties": {
                            "updatedAt": {"anyOf": [{"type": "string"}, {"type": "null"}]}
                        }
                    },
                ]
            },
        },
    }
    assert _style_violations(document) == [
        "GET /x 200.createdAt: a timestamp without format date-time",
        "GET /x 200.items[].sip_trunk_id: not camelCase",
        "GET /x 200.items[].updatedAt: a timestamp without format date-time",
    ]


def _response_model_titles() -> set[str]:
    titles, pending = set(), [ResponseModel]
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        if model.__module__.startswith("api.schemas."):
            titles.add(model.__name__)
    return titles


def test_every_route_answers_with_a_response_model_of_api_schemas() -> None:
    document = app.openapi()
    declared = _response_model_titles() | {Error.__name__}
    # The vendor-compatible routes answer in their vendors' shapes, from api/schemas/compat.py.
    vendors = {
        name
        for name, value in vars(compat_schemas).items()
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
    }
    for where, _, schema in _response_schemas(document):
        model = _resolve(document, schema).get("title")
        allowed = declared | vendors if where.split(" ")[1].startswith(COMPAT_PATHS) else declared
        assert model in allowed, f"{where}: {model} is not from api/schemas"
    bodiless = [
        f"{method} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if not any(
            status == "204" or "content" in response
            for status, response in operation["responses"].items()
            if status.startswith("2")
        )
    ]
    assert bodiless == []


def test_an_agent_shows_every_field_it_is_written_with() -> None:
    assert set(AgentCreate.model_fields) <= set(AgentOut.model_fields)
    assert set(ModelConfig.model_fields) == set(ModelOut.model_fields)


def test_timestamps_are_iso_utc_with_milliseconds_from_the_one_helper() -> None:
    assert iso_from_ms(1_795_918_264_123) == "2026-11-29T02:11:04.123Z"
    assert iso_from_ms(1_795_918_264_123) == iso_timestamp(1_795_918_264.123)
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_from_ms(None) is None


def _keys(value: Any, path: str = "") -> Iterator[str]:
    """Every object key in a JSON value, except inside data maps."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield f"{path}.{key}"
            if key not in DATA_MAPS:
                yield from _keys(child, f"{path}.{key}")
    elif isinstance(value, list):
        for child in value:
            yield from _keys(child, f"{path}[]")


def _timestamps(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            if _is_timestamp_name(key) and child is not None:
                yield f"{path}.{key}", child
            if key == "transitions":
                yield from ((f"{path}.transitions.{k}", v) for k, v in child.items())
            elif key not in DATA_MAPS:
                yield from _timestamps(child, f"{path}.{key}")
    elif isinstance(value, list):
        for child in value:
            yield from _timestamps(child, f"{path}[]")


async def test_live_bodies_have_only_camel_case_keys_and_iso_timestamps(
    client: httpx.AsyncClient, tenant: Tenant, lk: Any
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    agent = await tenant.create_agent(pipeline={"llm": {"model": "gpt-4o-mini"}})
    number = await tenant.register_number()
    placed = await tenant.place_call(
        to="+15105550123", call_agent_id=agent["id"], metadata={"crm_id": "42"}
    )
    call_id = placed.json()["callId"]
    bodies = {
        "agent": agent,
        "number": number,
        "accepted": placed.json(),
        "agents": (await tenant.request("GET", "/v1/api/agents")).json(),
        "numbers": (await tenant.request("GET", "/v1/api/numbers")).json(),
        "call": (await tenant.request("GET", f"/v1/api/call/{call_id}")).json(),
        "calls": (await tenant.request("GET", "/v1/api/calls")).json(),
        "events": (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json(),
        "canceled": (await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")).json(),
        "workspace": (await client.get(f"/v1/admin/workspaces/{tenant.id}", headers=admin)).json(),
        "trunks": (
            await client.get(f"/v1/admin/workspaces/{tenant.id}/trunks", headers=admin)
        ).json(),
        "readiness": (await client.get("/readyz", headers=admin)).json(),
        "error": (await tenant.request("GET", "/v1/api/agents/nope")).json(),
    }
    keys = [f"{name}{key}" for name, body in bodies.items() for key in _keys(body)]
    assert [key for key in keys if not CAMEL_CASE.match(key.rsplit(".", 1)[1])] == []
    stamps = [
        (f"{name}{path}", v) for name, body in bodies.items() for path, v in _timestamps(body)
    ]
    assert {name.split(".")[0] for name, _ in stamps} >= {"agent", "number", "call", "events"}
    assert [(path, v) for path, v in stamps if not ISO_UTC_MS.match(str(v))] == []
    assert bodies["call"]["metadata"] == {"crm_id": "42"}  # the client's keys, untouched


@pytest.mark.parametrize("field", ["sip_trunk_id", "sipTrunkId"])
async def test_request_bodies_keep_their_snake_case_fields(
    client: httpx.AsyncClient, tenant: Tenant, field: str
) -> None:
    """The documented snake_case field is accepted; the camelCase spelling is not a field."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = await client.post(
        f"/v1/admin/workspaces/{tenant.id}/trunks",
        headers=admin,
        json={field: "ST_style"},
    )
    assert answer.status_code == (201 if field == "sip_trunk_id" else 422)
    if field == "sip_trunk_id":
        assert answer.json() == {"workspaceId": tenant.id, "sipTrunkIds": ["ST_style"]}
