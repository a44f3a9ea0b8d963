"""Credentials and ids (issue 10, items 3, 9, 10): key rotation leaves exactly one valid key,
ids from the request never reach a Redis key unchecked, and tokens with non-ASCII characters
are wrong tokens, not server errors. Real API, real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis

from api.security import hash_api_key
from api.settings import Settings
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN, redis_snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _opens(http: httpx.AsyncClient, workspace_id: str, api_key: str) -> bool:
    headers = {"x-workspace-id": workspace_id, "x-api-key": api_key}
    response = await http.get("/v1/api/agents", headers=headers)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def test_concurrent_rotations_leave_exactly_one_valid_key(
    tenant: Tenant, client: httpx.AsyncClient, redis_client: redis.Redis, settings: Settings
) -> None:
    path = f"/v1/admin/workspaces/{tenant.id}/rotate-key"
    answers = await asyncio.gather(*(client.post(path, headers=ADMIN) for _ in range(4)))
    assert [answer.status_code for answer in answers] == [200] * 4
    keys = [answer.json()["apiKey"] for answer in answers]
    valid = [key for key in keys if await _opens(client, tenant.id, key)]
    assert len(valid) == 1
    assert not await _opens(client, tenant.id, tenant.api_key)
    # Exactly one index entry is left, and it is the workspace's current key.
    index = list(redis_client.scan_iter(match=f"{settings.redis_prefix}:apikey:*"))
    assert index == [f"{settings.redis_prefix}:apikey:{hash_api_key(valid[0])}".encode()]
    # A later rotation retires that one too.
    rotated = await client.post(path, headers=ADMIN)
    assert not await _opens(client, tenant.id, valid[0])
    assert await _opens(client, tenant.id, rotated.json()["apiKey"])


async def test_an_index_entry_that_outlived_its_key_opens_nothing(
    tenant: Tenant, client: httpx.AsyncClient, redis_client: redis.Redis, settings: Settings
) -> None:
    """What a lost rotation race used to leave: `apikey:<hash>` -> the workspace, while the
    workspace's `key_hash` is another key's. The index alone is not proof."""
    stale = "od_left-over-by-a-race"
    redis_client.set(f"{settings.redis_prefix}:apikey:{hash_api_key(stale)}", tenant.id)
    assert not await _opens(client, tenant.id, stale)
    placed = await tenant.place_call(
        to="+14155550123", call_agent_id="any", headers={"x-api-key": stale}
    )
    assert (placed.status_code, placed.json()["code"]) == (401, "UNAUTHORIZED")
    assert await _opens(client, tenant.id, tenant.api_key)


@pytest.fixture
async def placed_call(tenant: Tenant, lk: Any) -> str:
    agent = await tenant.create_agent()
    await tenant.register_number()
    response = await tenant.place_call(to="+14155550123", call_agent_id=agent["id"])
    assert response.status_code == 200, response.text
    return str(response.json()["callId"])


def _assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == ("error", code)


@pytest.mark.parametrize("suffix", [":numbers", ":agents", ":calls", ":idem:x", " x", "\u00e9"])
@pytest.mark.parametrize("right_key", [True, False])
async def test_a_workspace_id_that_names_another_key_is_refused(
    suffix: str,
    right_key: bool,
    tenant: Tenant,
    placed_call: str,
    client: httpx.AsyncClient,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    workspace_id = (tenant.id + suffix).encode()
    api_key = tenant.api_key if right_key else "od_wrong"
    headers = {"x-workspace-id": workspace_id, "x-api-key": api_key.encode()}
    before = redis_snapshot(redis_client, settings.redis_prefix)
    for method, path in [
        ("GET", "/v1/api/agents"),
        ("GET", "/v1/api/numbers"),
        ("GET", "/v1/api/calls"),
        ("GET", f"/v1/api/call/{placed_call}"),
    ]:
        response = await client.request(method, path, headers=headers)
        _assert_json_error(response, 401, "UNAUTHORIZED")
    placed = await client.post(
        "/v1/api/call",
        json={"to": "+14155550123", "call_agent_id": "x"},
        headers=headers,
    )
    _assert_json_error(placed, 401, "UNAUTHORIZED")
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


@pytest.mark.parametrize(
    "path_of",
    [
        lambda call: f"/v1/api/call/{call}:events",
        lambda call: f"/v1/api/call/{call}:delivery",
        lambda call: f"/v1/api/call/{call}:events/events",
        lambda call: f"/v1/api/call/{call}:eids/events/x/redeliver",
        lambda call: f"/v1/api/agents/{call}:x",
    ],
)
async def test_a_path_id_that_names_another_key_is_a_404(
    path_of: Any,
    tenant: Tenant,
    placed_call: str,
    client: httpx.AsyncClient,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    path = path_of(placed_call)
    method = "POST" if path.endswith("redeliver") else "GET"
    before = redis_snapshot(redis_client, settings.redis_prefix)
    _assert_json_error(await tenant.request(method, path), 404, "NOT_FOUND")
    # A wrong key hears 401 first, whatever the id.
    wrong = await tenant.request(method, path, headers={"x-api-key": "od_wrong"})
    _assert_json_error(wrong, 401, "UNAUTHORIZED")
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_admin_paths_with_a_malformed_workspace_id_are_404(
    tenant: Tenant, client: httpx.AsyncClient
) -> None:
    for method, path in [
        ("GET", f"/v1/admin/workspaces/{tenant.id}:numbers"),
        ("PATCH", f"/v1/admin/workspaces/{tenant.id}:agents"),
        ("POST", f"/v1/admin/workspaces/{tenant.id}:calls/rotate-key"),
    ]:
        body = {"disabled": True} if method == "PATCH" else None
        response = await client.request(method, path, headers=ADMIN, json=body)
        _assert_json_error(response, 404, "NOT_FOUND")
    assert await _opens(client, tenant.id, tenant.api_key)


async def test_a_call_naming_a_malformed_agent_id_is_a_422(tenant: Tenant) -> None:
    response = await tenant.place_call(to="+14155550123", call_agent_id="a:b")
    _assert_json_error(response, 422, "VALIDATION_ERROR")
    assert response.json()["details"]["errors"][0]["field"] == "call_agent_id"


@pytest.mark.parametrize("token", ["t\u00e9st", "\u00ff" * 40, "test-admin-token\u00e9"])
async def test_non_ascii_bearer_tokens_are_wrong_tokens(
    token: str, tenant: Tenant, placed_call: str, client: httpx.AsyncClient
) -> None:
    # Sent as raw UTF-8 bytes; the server reads header bytes as latin-1, so never ASCII.
    authorization = b"Bearer " + token.encode()
    admin = await client.get(
        f"/v1/admin/workspaces/{tenant.id}", headers={"Authorization": authorization}
    )
    _assert_json_error(admin, 401, "UNAUTHORIZED")
    event = {"type": "agent.started", "data": {}}
    internal = await client.post(
        f"/v1/internal/calls/{placed_call}/events",
        json=event,
        headers={"Authorization": authorization},
    )
    _assert_json_error(internal, 401, "UNAUTHORIZED")
