"""The pacing limits through the API: the operator's per-trunk overrides and workspace
concurrency (admin API), `GET /v1/api/limits` (limits and current use), and a waiting call's
`waitingFor`/`waitingSince` in `GET /v1/api/call/{id}`. Real API, real Redis; the writes
land where the admission scripts read them (a real admission checks it)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import redis

from api.settings import Settings
from api.store.base import open_store
from api.store.keys import Keys
from api.store.pacing import admit
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN, redis_snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TRUNK = "ST_limited1"


async def _limits(tenant: Tenant) -> dict[str, Any]:
    response = await tenant.request("GET", "/v1/api/limits")
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_operator_sets_trunk_and_workspace_limits_and_the_workspace_sees_them(
    tenant: Tenant, client: httpx.AsyncClient, settings: Settings, redis_client: redis.Redis
) -> None:
    await tenant.register_number(sip_trunk_id=TRUNK)
    shown = (await _limits(tenant))["trunks"]
    assert shown == [
        {
            "sipTrunkId": TRUNK,
            "maxCallsPerSecond": settings.trunk_max_calls_per_second,
            "maxConcurrentCalls": settings.trunk_max_concurrent_calls,
            "maxCallsPerSecondOwn": False,
            "maxConcurrentCallsOwn": False,
            "inUse": 0,
            "waiting": 0,
        }
    ]
    body = {"max_calls_per_second": 2.5, "max_concurrent_calls": 7}
    response = await client.put(f"/v1/admin/trunks/{TRUNK}/limits", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["maxCallsPerSecond"] == 2.5
    response = await client.put(
        f"/v1/admin/workspaces/{tenant.id}/limits", json={"max_concurrent_calls": 3}, headers=ADMIN
    )
    assert response.json() == {
        "workspaceId": tenant.id,
        "maxConcurrentCalls": 3,
        "maxConcurrentCallsOwn": True,
        "inUse": 0,
    }
    # Use: a live lease counts, an expired one does not (as the admission scripts count).
    keys = Keys(settings.redis_prefix)
    now = int(time.time() * 1000)
    redis_client.zadd(keys.trunk_slots(TRUNK), {"c_live": now + 60_000, "c_gone": now - 1})
    redis_client.zadd(keys.workspace_slots(tenant.id), {"c_live": now + 60_000})
    view = await _limits(tenant)
    assert view["workspace"] == {
        "workspaceId": tenant.id,
        "maxConcurrentCalls": 3,
        "maxConcurrentCallsOwn": True,
        "inUse": 1,
    }
    trunk = view["trunks"][0]
    assert (trunk["maxCallsPerSecond"], trunk["maxConcurrentCalls"], trunk["inUse"]) == (2.5, 7, 1)
    assert trunk["maxCallsPerSecondOwn"] and trunk["maxConcurrentCallsOwn"]

    # null puts the default back.
    body = {"max_calls_per_second": None, "max_concurrent_calls": 7}
    await client.put(f"/v1/admin/trunks/{TRUNK}/limits", json=body, headers=ADMIN)
    trunk = (await _limits(tenant))["trunks"][0]
    assert trunk["maxCallsPerSecond"] == settings.trunk_max_calls_per_second
    assert not trunk["maxCallsPerSecondOwn"] and trunk["maxConcurrentCallsOwn"]


async def test_bad_limits_are_refused_and_change_nothing(
    tenant: Tenant, client: httpx.AsyncClient, settings: Settings, redis_client: redis.Redis
) -> None:
    await client.put(
        f"/v1/admin/trunks/{TRUNK}/limits", json={"max_concurrent_calls": 4}, headers=ADMIN
    )
    before = redis_snapshot(redis_client, settings.redis_prefix)
    trunk_path = f"/v1/admin/trunks/{TRUNK}/limits"
    ws_path = f"/v1/admin/workspaces/{tenant.id}/limits"
    for path, body in [
        (trunk_path, {"max_calls_per_second": -1}),
        (trunk_path, {"max_calls_per_second": 1001}),
        # slower than one call per 100 s: its turns would outlive the pacing keys
        (trunk_path, {"max_calls_per_second": 0.001}),
        (trunk_path, {"max_calls_per_second": 1e-300}),
        (trunk_path, {"max_concurrent_calls": 1.5}),
        (trunk_path, {"max_concurrent_calls": "ten"}),
        (trunk_path, {"burst": 3}),
        (ws_path, {"max_concurrent_calls": -2}),
        (ws_path, {}),
    ]:
        response = await client.put(path, json=body, headers=ADMIN)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    missing = await client.put(
        "/v1/admin/workspaces/ws_nobody/limits", json={"max_concurrent_calls": 1}, headers=ADMIN
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    bad_id = await client.put(
        "/v1/admin/trunks/ST%3Aother/limits", json={"max_concurrent_calls": 1}, headers=ADMIN
    )
    assert bad_id.status_code == 404
    no_token = await client.put(trunk_path, json={"max_concurrent_calls": 1})
    assert no_token.status_code == 401
    as_workspace = await tenant.request("PUT", trunk_path, json={"max_concurrent_calls": 1})
    assert as_workspace.status_code == 401
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_a_held_call_shows_what_it_waits_for_and_since_when(
    tenant: Tenant, client: httpx.AsyncClient, settings: Settings, redis_client: redis.Redis
) -> None:
    """No worker: the admission runs here, on the limit the operator set through the API."""
    await tenant.register_number(sip_trunk_id=TRUNK)
    agent_id = (await tenant.create_agent())["id"]
    await client.put(
        f"/v1/admin/workspaces/{tenant.id}/limits", json={"max_concurrent_calls": 1}, headers=ADMIN
    )
    calls = []
    for _ in range(2):
        response = await tenant.place_call(to="+14155552671", call_agent_id=agent_id)
        calls.append(response.json()["callId"])
    store = open_store(settings)
    try:
        before = int(time.time() * 1000)
        assert (await admit(store, calls[0])).outcome == "admitted"
        held = await admit(store, calls[1])
        after = int(time.time() * 1000)
    finally:
        await store.aclose()
    assert (held.outcome, held.reason) == ("waiting", "workspace_concurrency")
    view = (await tenant.request("GET", f"/v1/api/call/{calls[1]}")).json()
    assert view["status"] == "queued"
    assert view["waitingFor"] == "workspace_concurrency"
    since = redis_client.hget(Keys(settings.redis_prefix).call(calls[1]), "waiting_since")
    assert since is not None and before <= int(since) <= after
    assert view["waitingSince"].endswith("Z") and view["waitingSince"][:4].isdigit()
    admitted = (await tenant.request("GET", f"/v1/api/call/{calls[0]}")).json()
    assert admitted["waitingFor"] is None and admitted["waitingSince"] is None
    assert (await _limits(tenant))["workspace"]["inUse"] == 1
    assert (await _limits(tenant))["trunks"][0]["waiting"] == 1
