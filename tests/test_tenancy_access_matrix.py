"""The access matrix (issue 10, "Tests"): every workspace route of the API crossed with the
credentials and ids that must open nothing, every admin route crossed with tokens that are
not the operator's, and the agent event route crossed with another call's token.

Invariant checked by every cell: the answer is the expected `{"status": "error", "code"}`
(or, for a list read as another workspace, a 200 naming none of the victim's ids), no answer
carries the victim's data, no key under the deployment's Redis prefix was written, added or
deleted, and LiveKit got no request.

The routes come from the app itself (`test_every_route_is_in_the_matrix`): a new route fails
that test until it has a row here or a commented exclusion. One API server and one set of
workspaces serve the whole module (no cell may change anything), so the matrix stays fast;
a cell that does write fails itself, and later cells may then fail in its wake.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from api.app import create_app
from api.routes.call_accept import ACCEPT_CALL_PATH
from api.routes.call_batch import CALL_BATCH_PATH
from api.security import event_token
from api.settings import Settings
from tests.conftest import REDIS_URL, RUN_ID, delete_prefix
from tests.support import (
    ADMIN_TOKEN,
    TEST_API_KEY,
    TEST_API_SECRET,
    ApiServer,
    free_port,
    redis_snapshot,
)

# In workspace A's agent: no answer to anyone else may contain it.
MARKER = f"matrix-secret-{uuid.uuid4().hex[:8]}"
CALLEE = "+14155550123"
# A places its call with this Idempotency-Key: keys are per workspace, so B sending A's key
# and body must never be answered with A's call.
IDEMPOTENCY_KEY = "matrix-order-1"

# Every workspace route ("METHOD path"). `POST /v1/api/call` is served as plain ASGI ahead of
# FastAPI's router (api.routes.call_accept), so the router walk cannot see it: it is listed
# here by its constant and the walk adds it too.
WORKSPACE_ROUTES = (
    "POST /v1/api/agents",
    "GET /v1/api/agents",
    "GET /v1/api/agents/{agent_id}",
    "PATCH /v1/api/agents/{agent_id}",
    "DELETE /v1/api/agents/{agent_id}",
    "POST /v1/api/numbers",
    "GET /v1/api/numbers",
    "DELETE /v1/api/numbers/{number}",
    "POST /v1/api/dnc",
    "GET /v1/api/dnc",
    "GET /v1/api/dnc/{number}",
    "DELETE /v1/api/dnc/{number}",
    "POST /v1/api/dnc/import",
    f"POST {ACCEPT_CALL_PATH}",
    f"POST {CALL_BATCH_PATH}",
    "GET /v1/api/call/{call_id}",
    "PATCH /v1/api/call/{call_id}",
    "POST /v1/api/call/{call_id}/cancel",
    "GET /v1/api/calls",
    "GET /v1/api/call/{call_id}/events",
    "POST /v1/api/call/{call_id}/events/{event_id}/redeliver",
    "GET /v1/api/limits",
    "GET /v1/api/events/stream",
    "GET /v1/api/usage",
)
WORKSPACE_COLUMNS = (
    "other_key",  # A's workspace id with B's (valid) key
    "other_id",  # B's valid credentials naming A's ids (path, body or list)
    "no_key",  # A's workspace id, no key
    "malformed_id_header",  # x-workspace-id that would name another key, with A's key
    "malformed_id_path",  # A's valid credentials, a path/body id that would name another key
    "disabled",  # a workspace disabled by the operator, on its own resources
    "rotated_key",  # a workspace's key from before the operator rotated it, on its resources
)

# Cells with nothing to cross: the route takes no id, in its path or its body. (The lists
# take none either, but B's list is read for A's ids: `other_id` applies to them.)
NOT_APPLICABLE = {
    ("POST /v1/api/agents", "other_id"),
    ("POST /v1/api/agents", "malformed_id_path"),
    ("GET /v1/api/agents", "malformed_id_path"),
    ("GET /v1/api/numbers", "malformed_id_path"),
    ("GET /v1/api/limits", "malformed_id_path"),
    ("GET /v1/api/usage", "malformed_id_path"),
    # A number is nobody's id: B listing A's listed number lists it for B (its own cells).
    ("POST /v1/api/dnc", "other_id"),
    # The import names no id; it writes only the caller's own list (test_dnc_import.py).
    ("POST /v1/api/dnc/import", "other_id"),
    ("POST /v1/api/dnc/import", "malformed_id_path"),
}
WORKSPACE_CELLS = [
    (route, column)
    for route in WORKSPACE_ROUTES
    for column in WORKSPACE_COLUMNS
    if (route, column) not in NOT_APPLICABLE
]

ADMIN_ROUTES = (
    "POST /v1/admin/workspaces",
    "GET /v1/admin/workspaces",
    "GET /v1/admin/workspaces/{workspace_id}",
    "PATCH /v1/admin/workspaces/{workspace_id}",
    "POST /v1/admin/workspaces/{workspace_id}/rotate-key",
    "POST /v1/admin/workspaces/{workspace_id}/rotate-hook-token",
    "PUT /v1/admin/workspaces/{workspace_id}/allowed-countries",
    "PUT /v1/admin/workspaces/{workspace_id}/call-window",
    "GET /v1/admin/workspaces/{workspace_id}/trunks",
    "POST /v1/admin/workspaces/{workspace_id}/trunks",
    "DELETE /v1/admin/workspaces/{workspace_id}/trunks/{sip_trunk_id}",
    "PUT /v1/admin/workspaces/{workspace_id}/limits",
    "PUT /v1/admin/trunks/{sip_trunk_id}/limits",
    "POST /v1/admin/workspaces/{workspace_id}/credits",
    "DELETE /v1/admin/workspaces/{workspace_id}/credits",
    "GET /v1/admin/usage",
)
ADMIN_COLUMNS = ("no_token", "wrong_token", "non_ascii_token", "workspace_key")

# The agent worker's routes, each opened by the call's own event token.
INTERNAL_ROUTES = {
    "POST /v1/internal/calls/{call_id}/events": {"type": "agent.started", "data": {}},
    "POST /v1/internal/calls/{call_id}/reservation": None,
}

# Routes outside the matrix, each with its own authentication and its own tests.
EXCLUDED_ROUTES = {
    # Public probes; their details sit behind a token (tests/test_tenancy_probes.py).
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    # Signed by LiveKit with the deployment's key (tests/test_tenancy_webhook_intake.py).
    "POST /v1/livekit/webhook",
    # FastAPI's schema and documentation pages: static, no workspace data.
    "GET /openapi.json",
    "GET /docs",
    "GET /redoc",
    # The documentation pages' assets, served from the installed package (test_docs_ui.py).
    "MOUNT /docs-assets",
    # The vendor-compatible routes, by key and by integration base URL, answer in their
    # vendors' shapes: their own matrix is tests/test_tenancy_compat.py.
    *(
        f"{method} {prefix}{path}"
        for method, path in (
            ("POST", "/initiateCall"),
            ("POST", "/v1/calls/single-phone-call"),
            ("POST", "/api/v1/business/{business_id}/call/initiate"),
            ("GET", "/api/v1/business/{business_id}/call/{call_id}"),
        )
        for prefix in ("", "/hooks/{hook_token}")
    ),
}


# --- the world the cells look at --------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """A workspace created through the admin API, with one of each resource."""

    id: str
    key: str
    agent: str
    number: str
    trunk: str
    call: str

    @property
    def headers(self) -> dict[str, str]:
        return {"x-workspace-id": self.id, "x-api-key": self.key}

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, self.agent, self.number, self.trunk, self.call)


@dataclass(frozen=True)
class World:
    a: Actor  # the victim: the cells name its resources
    b: Actor  # another workspace, with its own valid key and resources
    c: Actor  # a workspace the operator disabled through the admin API
    d: Actor  # a workspace whose key the operator rotated: `d.key` is the retired one


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    headers: dict[str, Any]
    status: int
    code: str | None  # None: a 2xx read
    json: Any = None
    absent: tuple[str, ...] = ()  # ids the answer must not name


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _actor(
    http: httpx.Client, name: str, number: str, secret: str = "", idempotency_key: str = ""
) -> Actor:
    workspace = _created(http.post("/v1/admin/workspaces", json={"name": name}, headers=ADMIN))
    headers = {"x-workspace-id": workspace["workspaceId"], "x-api-key": workspace["apiKey"]}
    instructions = f"Say hello. {secret}"
    agent = _created(
        http.post(
            "/v1/api/agents",
            json={"name": f"Agent {secret}", "instructions": instructions},
            headers=headers,
        )
    )
    registered = _created(
        http.post(
            "/v1/api/numbers",
            json={"number": number, "trunk": {"address": "sip.example.net"}},
            headers=headers,
        )
    )
    # The workspace's own caller number is on its do-not-call list (its calls go elsewhere).
    _created(http.post("/v1/api/dnc", json={"numbers": [number]}, headers=headers))
    placed = _created(
        http.post(
            ACCEPT_CALL_PATH,
            json={"to": CALLEE, "call_agent_id": agent["id"]},
            headers=headers | ({"Idempotency-Key": idempotency_key} if idempotency_key else {}),
        )
    )
    return Actor(
        id=workspace["workspaceId"],
        key=workspace["apiKey"],
        agent=agent["id"],
        number=registered["number"],
        trunk=registered["sipTrunkId"],
        call=placed["callId"],
    )


@pytest.fixture(scope="module")
def matrix_settings(redis_client: redis.Redis, livekit_server: Any) -> Iterator[Settings]:
    """conftest's `settings`, for the module: a fresh key prefix, production defaults."""
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield Settings(
        REDIS_URL=REDIS_URL,
        LIVEKIT_URL=livekit_server.url,
        LIVEKIT_API_KEY=TEST_API_KEY,
        LIVEKIT_API_SECRET=TEST_API_SECRET,
        OUTDIAL_ADMIN_TOKEN=ADMIN_TOKEN,
        OUTDIAL_PUBLIC_URL="http://127.0.0.1:9",
        OUTDIAL_REDIS_PREFIX=prefix,
        OUTDIAL_CALLBACK_ALLOW_PRIVATE=True,
        OUTDIAL_SECRET_KEY="test-event-token-key",
        OUTDIAL_LOG_JSON=False,
        OUTDIAL_LOG_LEVEL="WARNING",
        OUTDIAL_WORKER_METRICS_PORT=0,
    )
    delete_prefix(redis_client, prefix)


@pytest.fixture(scope="module")
def http(matrix_settings: Settings, livekit_server: Any) -> Iterator[httpx.Client]:
    """One API server for the module (no worker: placed calls stay queued, nothing moves)."""
    livekit_server.reset()
    server = ApiServer(matrix_settings, free_port()).start()
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            yield client
    finally:
        server.stop()
        livekit_server.reset()


@pytest.fixture(scope="module")
def world(http: httpx.Client, redis_client: redis.Redis, matrix_settings: Settings) -> World:
    a = _actor(http, "victim", "+15105550100", MARKER, IDEMPOTENCY_KEY)
    b = _actor(http, "other", "+15105550101")
    c = _actor(http, "disabled", "+15105550102")
    disabled = http.patch(f"/v1/admin/workspaces/{c.id}", json={"disabled": True}, headers=ADMIN)
    assert disabled.status_code == 200, disabled.text
    d = _actor(http, "rotated", "+15105550103")
    rotated = http.post(f"/v1/admin/workspaces/{d.id}/rotate-key", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    # The snapshot sees the world (and the broker's queue): an empty one would prove nothing.
    keys = b"\n".join(redis_snapshot(redis_client, matrix_settings.redis_prefix))
    assert a.call.encode() in keys and b"dramatiq" in keys
    return World(a, b, c, d)


# --- the cells --------------------------------------------------------------------------------


def _fill(template: str, owner: Actor, **malformed: str) -> str:
    values = {
        "agent_id": owner.agent,
        "number": owner.number,
        "call_id": owner.call,
        "event_id": "evt_none",
    }
    return template.format(**(values | malformed))


BODIES: dict[str, Callable[[Actor], Any]] = {
    "POST /v1/api/agents": lambda _: {"name": "Matrix", "instructions": "Say hello."},
    "PATCH /v1/api/agents/{agent_id}": lambda _: {"name": "Renamed"},
    "POST /v1/api/numbers": lambda _: {
        "number": "+15105550177",
        "trunk": {"address": "sip.example.net"},
    },
    "POST /v1/api/dnc": lambda owner: {"numbers": [owner.number]},
    f"POST {ACCEPT_CALL_PATH}": lambda owner: {"to": CALLEE, "call_agent_id": owner.agent},
    f"POST {CALL_BATCH_PATH}": lambda owner: [{"to": CALLEE, "call_agent_id": owner.agent}],
    "PATCH /v1/api/call/{call_id}": lambda _: {"delay_seconds": 60},
}


def _generic_cells(route: str, world: World) -> dict[str, list[Probe]]:
    """The columns whose answer does not depend on the route: the credentials fail first."""
    method, template = route.split(" ", 1)
    a, b, c, d = world.a, world.b, world.c, world.d
    body = BODIES.get(route, lambda _: None)

    def as_(headers: dict[str, str], owner: Actor, status: int, code: str) -> list[Probe]:
        return [Probe(method, _fill(template, owner), headers, status, code, body(owner))]

    return {
        "other_key": as_({"x-workspace-id": a.id, "x-api-key": b.key}, a, 403, "PERMISSION_DENIED"),
        "no_key": as_({"x-workspace-id": a.id}, a, 401, "UNAUTHORIZED"),
        "malformed_id_header": as_(
            {"x-workspace-id": f"{a.id}:numbers", "x-api-key": a.key}, a, 401, "UNAUTHORIZED"
        ),
        "disabled": as_(c.headers, c, 403, "WORKSPACE_DISABLED"),
        "rotated_key": as_(d.headers, d, 401, "UNAUTHORIZED"),
    }


def _specific_cells(world: World) -> dict[tuple[str, str], list[Probe]]:
    """`other_id` and `malformed_id_path`: what the route does with the id it is given."""
    a, b = world.a, world.b

    def as_b(route: str) -> list[Probe]:
        """404 for A's resource, as for an id that is no one's."""
        method, template = route.split(" ", 1)
        json = BODIES.get(route, lambda _: None)(b)
        return [Probe(method, _fill(template, a), b.headers, 404, "NOT_FOUND", json)]

    def malformed(
        route: str, status: int = 404, code: str = "NOT_FOUND", **ids: str
    ) -> list[Probe]:
        method, template = route.split(" ", 1)
        json = BODIES.get(route, lambda _: None)(a)
        return [Probe(method, _fill(template, a, **ids), a.headers, status, code, json)]

    def listed(path: str) -> list[Probe]:
        return [Probe("GET", path, b.headers, 200, None, absent=a.ids)]

    call = f"POST {ACCEPT_CALL_PATH}"
    batch = f"POST {CALL_BATCH_PATH}"
    return {
        ("GET /v1/api/agents", "other_id"): listed("/v1/api/agents"),
        ("GET /v1/api/limits", "other_id"): listed("/v1/api/limits"),
        ("GET /v1/api/usage", "other_id"): listed("/v1/api/usage"),
        # B's stream, from the feed's start, names none of A's calls; A's call is no
        # call of B's; a call id that would name another key is refused as a parameter.
        ("GET /v1/api/events/stream", "other_id"): [
            *listed("/v1/api/events/stream?after=0&max_seconds=0"),
            Probe("GET", f"/v1/api/events/stream?call_id={a.call}", b.headers, 404, "NOT_FOUND"),
        ],
        ("GET /v1/api/events/stream", "malformed_id_path"): [
            Probe(
                "GET",
                f"/v1/api/events/stream?call_id={a.call}:events",
                a.headers,
                422,
                "VALIDATION_ERROR",
            )
        ],
        **{
            (route, column): cells
            for route in (
                "GET /v1/api/agents/{agent_id}",
                "PATCH /v1/api/agents/{agent_id}",
                "DELETE /v1/api/agents/{agent_id}",
            )
            for column, cells in (
                ("other_id", as_b(route)),
                ("malformed_id_path", malformed(route, agent_id=f"{a.agent}:x")),
            )
        },
        ("POST /v1/api/numbers", "other_id"): [
            # refused before LiveKit creates a trunk for it
            Probe(
                "POST",
                "/v1/api/numbers",
                b.headers,
                409,
                "NUMBER_TAKEN",
                {"number": a.number, "trunk": {"address": "sip.example.net"}},
            ),
            Probe(
                "POST",
                "/v1/api/numbers",
                b.headers,
                403,
                "TRUNK_NOT_ASSIGNED",
                {"number": "+15105550188", "sip_trunk_id": a.trunk},
            ),
        ],
        # The route's id is in the body: a trunk id that could name another key.
        ("POST /v1/api/numbers", "malformed_id_path"): [
            Probe(
                "POST",
                "/v1/api/numbers",
                a.headers,
                422,
                "VALIDATION_ERROR",
                {"number": "+15105550199", "sip_trunk_id": f"{a.trunk}:x"},
            )
        ],
        ("GET /v1/api/numbers", "other_id"): listed("/v1/api/numbers"),
        ("DELETE /v1/api/numbers/{number}", "other_id"): as_b("DELETE /v1/api/numbers/{number}"),
        ("DELETE /v1/api/numbers/{number}", "malformed_id_path"): malformed(
            "DELETE /v1/api/numbers/{number}", 400, "INVALID_NUMBER", number=f"{a.number}:x"
        ),
        # B's list names none of A's numbers; A's listed number is not on B's list, and B
        # cannot take it off A's. A number that is no number is reported, never stored.
        ("GET /v1/api/dnc", "other_id"): listed("/v1/api/dnc"),
        ("GET /v1/api/dnc", "malformed_id_path"): [
            Probe(
                "GET", f"/v1/api/dnc?cursor=%2B{a.number[1:]}:x", a.headers, 422, "VALIDATION_ERROR"
            )
        ],
        ("POST /v1/api/dnc", "malformed_id_path"): [
            Probe("POST", "/v1/api/dnc", a.headers, 200, None, {"numbers": [f"{a.number}:x"]})
        ],
        **{
            (route, column): cells
            for route in ("GET /v1/api/dnc/{number}", "DELETE /v1/api/dnc/{number}")
            for column, cells in (
                ("other_id", as_b(route)),
                (
                    "malformed_id_path",
                    malformed(route, 400, "INVALID_NUMBER", number=f"{a.number}:x"),
                ),
            )
        },
        (call, "other_id"): [
            Probe(
                "POST",
                ACCEPT_CALL_PATH,
                b.headers | {"Idempotency-Key": IDEMPOTENCY_KEY},
                404,
                "INVALID_AGENT",
                {"to": CALLEE, "call_agent_id": a.agent},
                absent=(a.call,),
            ),
            Probe(
                "POST",
                ACCEPT_CALL_PATH,
                b.headers,
                400,
                "INVALID_NUMBER_ID",
                {"to": CALLEE, "call_agent_id": b.agent, "from_number": a.number},
            ),
        ],
        # The accept route's ids are in the body.
        (call, "malformed_id_path"): [
            Probe(
                "POST",
                ACCEPT_CALL_PATH,
                a.headers,
                422,
                "VALIDATION_ERROR",
                {"to": CALLEE, "call_agent_id": f"{a.agent}:x"},
            )
        ],
        # A batch is answered per item: A's agent, or A's number as B's caller id, refuses
        # that item (INVALID_AGENT, INVALID_NUMBER_ID; test_call_batch.py), and writes nothing.
        (batch, "other_id"): [
            Probe(
                "POST",
                CALL_BATCH_PATH,
                b.headers,
                200,
                None,
                [
                    {"to": CALLEE, "call_agent_id": a.agent},
                    {"to": CALLEE, "call_agent_id": b.agent, "from_number": a.number},
                ],
                absent=(a.call,),
            )
        ],
        (batch, "malformed_id_path"): [
            Probe(
                "POST",
                CALL_BATCH_PATH,
                a.headers,
                200,
                None,
                [{"to": CALLEE, "call_agent_id": f"{a.agent}:x"}],
            )
        ],
        ("GET /v1/api/calls", "other_id"): listed("/v1/api/calls")
        + listed(f"/v1/api/calls?agent_id={a.agent}"),
        # Filters are compared with each call's fields, never put in a key name.
        ("GET /v1/api/calls", "malformed_id_path"): [
            Probe("GET", f"/v1/api/calls?agent_id={a.agent}:x", a.headers, 200, None)
        ],
        **{
            (route, column): cells
            for route in (
                "GET /v1/api/call/{call_id}",
                "PATCH /v1/api/call/{call_id}",
                "POST /v1/api/call/{call_id}/cancel",
                "GET /v1/api/call/{call_id}/events",
                "POST /v1/api/call/{call_id}/events/{event_id}/redeliver",
            )
            for column, cells in (
                ("other_id", as_b(route)),
                ("malformed_id_path", malformed(route, call_id=f"{a.call}:events")),
            )
        },
    }


def workspace_matrix(world: World) -> dict[tuple[str, str], list[Probe]]:
    cells: dict[tuple[str, str], list[Probe]] = {}
    for route in WORKSPACE_ROUTES:
        for column, probes in _generic_cells(route, world).items():
            cells[route, column] = probes
    return cells | _specific_cells(world)


def _admin_authorization(column: str, world: World) -> bytes | None:
    return {
        "no_token": None,
        "wrong_token": b"Bearer not-the-admin-token",
        # UTF-8 bytes; the server reads header bytes as latin-1, so never ASCII
        "non_ascii_token": f"Bearer {ADMIN_TOKEN}\u00e9".encode(),
        # a workspace's key opens its workspace, not the operator's API
        "workspace_key": f"Bearer {world.a.key}".encode(),
    }[column]


def admin_matrix(world: World) -> dict[tuple[str, str], list[Probe]]:
    bodies: dict[str, Any] = {
        "POST /v1/admin/workspaces": {"name": "intruder"},
        "PATCH /v1/admin/workspaces/{workspace_id}": {"disabled": True},
        "PUT /v1/admin/workspaces/{workspace_id}/allowed-countries": {"countries": ["US"]},
        "PUT /v1/admin/workspaces/{workspace_id}/call-window": {"call_window": None},
        "POST /v1/admin/workspaces/{workspace_id}/trunks": {"sip_trunk_id": world.b.trunk},
        "PUT /v1/admin/workspaces/{workspace_id}/limits": {"max_concurrent_calls": 1},
        "PUT /v1/admin/trunks/{sip_trunk_id}/limits": {"max_concurrent_calls": 1},
        "POST /v1/admin/workspaces/{workspace_id}/credits": {"minutes": 5},
    }
    cells: dict[tuple[str, str], list[Probe]] = {}
    for route in ADMIN_ROUTES:
        method, template = route.split(" ", 1)
        path = template.format(workspace_id=world.a.id, sip_trunk_id=world.a.trunk)
        for column in ADMIN_COLUMNS:
            authorization = _admin_authorization(column, world)
            headers = {} if authorization is None else {"Authorization": authorization}
            probe = Probe(method, path, headers, 401, "UNAUTHORIZED", bodies.get(route))
            cells[route, column] = [probe]
    return cells


# --- running a cell ---------------------------------------------------------------------------


def _run(
    http: httpx.Client, redis_client: redis.Redis, prefix: str, lk: Any, probes: list[Probe]
) -> None:
    for probe in probes:
        before, requests_before = redis_snapshot(redis_client, prefix), lk.count()
        response = http.request(probe.method, probe.path, headers=probe.headers, json=probe.json)
        assert response.status_code == probe.status, f"{probe}: {response.text}"
        assert MARKER not in response.text, f"{probe} leaked workspace A's data"
        assert not any(ident in response.text for ident in probe.absent), response.text
        if probe.code is not None:
            body = response.json()
            assert (body["status"], body["code"]) == ("error", probe.code), f"{probe}: {body}"
        assert redis_snapshot(redis_client, prefix) == before, f"{probe} changed Redis"
        assert lk.count() == requests_before, f"{probe} reached LiveKit"


@pytest.mark.parametrize(("route", "column"), WORKSPACE_CELLS)
def test_workspace_route(
    route: str,
    column: str,
    world: World,
    http: httpx.Client,
    redis_client: redis.Redis,
    matrix_settings: Settings,
    livekit_server: Any,
) -> None:
    cell = workspace_matrix(world)[route, column]
    _run(http, redis_client, matrix_settings.redis_prefix, livekit_server, cell)


@pytest.mark.parametrize("column", ADMIN_COLUMNS)
@pytest.mark.parametrize("route", ADMIN_ROUTES)
def test_admin_route(
    route: str,
    column: str,
    world: World,
    http: httpx.Client,
    redis_client: redis.Redis,
    matrix_settings: Settings,
    livekit_server: Any,
) -> None:
    cell = admin_matrix(world)[route, column]
    _run(http, redis_client, matrix_settings.redis_prefix, livekit_server, cell)


@pytest.mark.parametrize("token_of", ["other_call", "no_token", "non_ascii"])
@pytest.mark.parametrize("route", INTERNAL_ROUTES)
def test_agent_routes_need_the_calls_own_token(
    route: str,
    token_of: str,
    world: World,
    http: httpx.Client,
    redis_client: redis.Redis,
    matrix_settings: Settings,
    livekit_server: Any,
) -> None:
    signing_key = matrix_settings.event_signing_key
    authorization = {
        "other_call": f"Bearer {event_token(world.b.call, signing_key)}",
        "no_token": None,
        "non_ascii": f"Bearer {event_token(world.a.call, signing_key)}\u00e9",
    }[token_of]
    headers = {} if authorization is None else {"Authorization": authorization.encode()}
    path = route.split(" ", 1)[1].format(call_id=world.a.call)
    probe = Probe("POST", path, headers, 401, "UNAUTHORIZED", INTERNAL_ROUTES[route])
    _run(http, redis_client, matrix_settings.redis_prefix, livekit_server, [probe])


# --- the matrix covers the app ----------------------------------------------------------------


def _walk(routes: list[BaseRoute]) -> Iterator[str]:
    """ "METHOD path" of every endpoint, into routers included by FastAPI (which keeps them as
    one route object per `include_router`, expanded by `effective_route_contexts`)."""
    for route in routes:
        expand = getattr(route, "effective_route_contexts", None)
        if expand is not None:
            yield from _walk(list(expand()))
            continue
        if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            yield f"MOUNT {route.path}"  # files only, no workspace data: listed by name
            continue
        methods, path = getattr(route, "methods", None), getattr(route, "path", None)
        assert methods and path, f"a route the matrix cannot read: {route!r}"
        for method in sorted(set(methods) - {"HEAD"}):
            yield f"{method} {path}"


def test_every_route_is_in_the_matrix(world: World, matrix_settings: Settings) -> None:
    app = create_app(matrix_settings)
    served = set(_walk(app.routes)) | {f"POST {ACCEPT_CALL_PATH}"}
    known = set(WORKSPACE_ROUTES) | set(ADMIN_ROUTES) | set(INTERNAL_ROUTES) | EXCLUDED_ROUTES
    assert served - known == set(), "routes missing from the access matrix"
    assert known - served == set(), "the matrix lists routes the app does not serve"
    # Every cell is decided: probes, or listed as not applicable.
    workspace_cells, admin_cells = workspace_matrix(world), admin_matrix(world)
    assert all(workspace_cells[cell] for cell in WORKSPACE_CELLS)
    assert set(workspace_cells) == set(WORKSPACE_CELLS)
    assert set(admin_cells) == {
        (route, column) for route in ADMIN_ROUTES for column in ADMIN_COLUMNS
    }
