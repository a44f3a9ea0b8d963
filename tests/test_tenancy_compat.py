"""The access matrix of the vendor-compatible routes (docs/compat.md): each route, by key and
by integration base URL, crossed with the credentials and ids that must open nothing.

Invariant checked by every cell, as in tests/test_tenancy_access_matrix.py: the answer is
the vendor's refusal with the expected status and code, it names none of the victim's ids,
no key under the deployment's Redis prefix changed, and LiveKit got no request. The routes
come from the app (`test_every_compat_route_is_in_the_matrix`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from api.app import create_app
from api.routes.compat import contactship, iqra, voicegenie
from api.routes.compat.common import HOOK_ROUTE_PREFIX
from api.settings import Settings
from tests import test_tenancy_access_matrix as matrix
from tests.support import (
    ADMIN_TOKEN,
    redis_snapshot,
)

# The access matrix's module-scoped settings (a prefix of its own) and API server, as
# fixtures of this module too.
matrix_settings = matrix.matrix_settings
http = matrix.http

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MARKER = f"compat-secret-{uuid.uuid4().hex[:8]}"
CALLEE = "+14155550123"


@dataclass(frozen=True)
class Actor:
    id: str
    key: str
    hook: str  # the token of its integration base URL
    alias: int
    agent: str
    number: str
    call: str

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, self.agent, self.call, self.hook)


def _actor(http: httpx.Client, name: str, number: str, secret: str = "") -> Actor:
    created = http.post("/v1/admin/workspaces", json={"name": name}, headers=ADMIN).json()
    headers = {"x-workspace-id": created["workspaceId"], "x-api-key": created["apiKey"]}
    agent = http.post(
        "/v1/api/agents", json={"name": "A", "instructions": f"Hi. {secret}"}, headers=headers
    ).json()
    http.post(
        "/v1/api/numbers",
        json={"number": number, "trunk": {"address": "sip.example.net"}},
        headers=headers,
    ).raise_for_status()
    placed = http.post(
        "/v1/api/call", json={"to": CALLEE, "call_agent_id": agent["id"]}, headers=headers
    ).json()
    return Actor(
        id=created["workspaceId"],
        key=created["apiKey"],
        hook=urlsplit(created["integrationBaseUrl"]).path.rsplit("/", 1)[1],
        alias=created["alias"],
        agent=agent["id"],
        number=number,
        call=placed["callId"],
    )


@dataclass(frozen=True)
class World:
    a: Actor  # the victim
    b: Actor  # another workspace
    c: Actor  # disabled by the operator
    d: Actor  # its key and token rotated: `d.key` and `d.hook` are the retired ones


@pytest.fixture(scope="module")
def world(http: httpx.Client) -> World:
    a = _actor(http, "victim", "+15105550100", MARKER)
    b = _actor(http, "other", "+15105550101")
    c = _actor(http, "disabled", "+15105550102")
    http.patch(f"/v1/admin/workspaces/{c.id}", json={"disabled": True}, headers=ADMIN)
    d = _actor(http, "rotated", "+15105550103")
    http.post(f"/v1/admin/workspaces/{d.id}/rotate-key", headers=ADMIN).raise_for_status()
    http.post(f"/v1/admin/workspaces/{d.id}/rotate-hook-token", headers=ADMIN).raise_for_status()
    return World(a, b, c, d)


# Each route: how to name `owner`'s resources, and how its vendor spells a refusal's code.
def _request(route: str, owner: Actor, business: int | None = None) -> tuple[str, str, Any]:
    alias = owner.alias if business is None else business
    if route == voicegenie.PATH:
        return "POST", route, {"phone_number": CALLEE, "agent_id": owner.agent}
    if route == contactship.PATH:
        body = {"from_number": owner.number, "to_number": CALLEE, "full_name": "X"}
        return "POST", route, body | {"agent_id": owner.agent}
    if route == iqra.INITIATE_PATH:
        body = {"RecipientNumber": CALLEE, "NumberId": owner.number, "AgentId": owner.agent}
        return "POST", route.format(business_id=alias), body
    return "GET", iqra.CALL_PATH.format(business_id=alias, call_id=owner.call), None


def _code(route: str, body: dict[str, Any]) -> str:
    if route == voicegenie.PATH:
        return str(body["message"])
    if route == contactship.PATH:
        return str(body["error"])
    return str(body["Code"]).split(":", 1)[1]


ROUTES = (voicegenie.PATH, contactship.PATH, iqra.INITIATE_PATH, iqra.CALL_PATH)
# (status, vendor code) per route for: no key, a retired key, a disabled workspace, another
# workspace naming the victim's ids.
EXPECTED = {
    voicegenie.PATH: {
        "none": (401, "Unauthorized"),
        "disabled": (403, "Account disabled"),
        "other": (404, "Agent not found"),
    },
    contactship.PATH: {
        "none": (401, "Unauthorized"),
        "disabled": (403, "Forbidden"),
        "other": (404, "Not Found"),  # the victim's agent is none of its own
    },
    iqra.INITIATE_PATH: {
        "none": (401, "PERMISSION_DENIED"),
        "disabled": (403, "BUSINESS_DISABLED"),
        "other": (403, "PERMISSION_DENIED"),  # the victim's business
    },
    iqra.CALL_PATH: {
        "none": (401, "PERMISSION_DENIED"),
        "disabled": (403, "BUSINESS_DISABLED"),
        "other": (403, "PERMISSION_DENIED"),  # the victim's business
        "other_business": (404, "NOT_FOUND"),  # its own business, the victim's call
    },
}
COLUMNS = ("no_key", "unknown_key", "rotated_key", "disabled", "other_key", "other_business")
BY = ("key", "url")


def _cell(route: str, column: str, by: str, world: World) -> tuple[Any, ...]:
    a, b, c, d = world.a, world.b, world.c, world.d
    expected = EXPECTED[route]
    owner, business, secret, outcome = {
        "no_key": (a, None, None, expected["none"]),
        "unknown_key": (a, None, "od_nobodys_secret_" + "x" * 20, expected["none"]),
        "rotated_key": (d, None, d.key, expected["none"]),
        "disabled": (c, None, c.key, expected["disabled"]),
        "other_key": (a, None, b.key, expected["other"]),
        # B's own business, A's ids: only the call status route names an id of A's then
        "other_business": (a, b.alias, b.key, expected.get("other_business")),
    }[column]
    if by == "url":
        tokens = {b.key: b.hook, c.key: c.hook, d.key: d.hook}
        secret = tokens.get(secret, "hk_" + "A" * 32) if secret else "hk_" + "B" * 32
    method, path, body = _request(route, owner, business)
    return method, path, body, secret, outcome


CELLS = [
    (route, column, by)
    for route in ROUTES
    for column in COLUMNS
    for by in BY
    if not (column == "other_business" and route != iqra.CALL_PATH)
    and not (column == "no_key" and by == "url")  # a URL always holds some token
]


@pytest.mark.parametrize(("route", "column", "by"), CELLS)
def test_compat_route(
    route: str,
    column: str,
    by: str,
    world: World,
    http: httpx.Client,
    redis_client: redis.Redis,
    matrix_settings: Settings,
    livekit_server: Any,
) -> None:
    method, path, body, secret, (status, code) = _cell(route, column, by, world)
    headers = {"x-api-key": secret} if by == "key" and secret else {}
    if by == "url":
        path = f"/hooks/{secret}{path}"
    before, requests_before = (
        redis_snapshot(redis_client, matrix_settings.redis_prefix),
        (livekit_server.count()),
    )
    response = http.request(method, path, headers=headers, json=body)
    assert (response.status_code, _code(route, response.json())) == (status, code), response.text
    assert MARKER not in response.text
    # none of the victim's ids but those the request itself sent (an answer may echo them)
    sent = path + json.dumps(body)
    assert not any(i in response.text for i in world.a.ids if i not in sent), response.text
    assert redis_snapshot(redis_client, matrix_settings.redis_prefix) == before
    assert livekit_server.count() == requests_before


def test_every_compat_route_is_in_the_matrix(matrix_settings: Settings) -> None:
    served = set(matrix._walk(create_app(matrix_settings).routes))
    compat = {route for route in served if route.split(" ", 1)[1] in ROUTES}
    hooks = {route for route in served if route.split(" ", 1)[1].startswith("/hooks/")}
    assert {route.split(" ", 1)[1] for route in compat} == set(ROUTES)
    assert {route.replace(HOOK_ROUTE_PREFIX, "", 1) for route in hooks} == compat
