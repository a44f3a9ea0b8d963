"""Identity for the vendor-compatible routes (issue 22): a workspace found from its API key
alone or from its integration token (`/hooks/<token>`), its numeric alias, and the usual
refusals (401 for what opens nothing, 403 for a disabled workspace). Real API on loopback
for the operator's side, the identity functions against the same real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from starlette.datastructures import Headers

from api.auth import Credentials, credentials_workspace, hook_credentials, key_only_credentials
from api.errors import ApiError
from api.security import hash_api_key, integration_base_url
from api.services.calls import place_call
from api.settings import Settings
from api.store.base import Store, open_store
from api.store.keys import Keys
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = open_store(settings)
    yield opened
    await opened.aclose()


def _hook_token(integration_url: str) -> str:
    return integration_url.rsplit("/hooks/", 1)[1]


async def _created(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/admin/workspaces", json={"name": "acme"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _refusal(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as refused:
        await call
    return refused.value.status, refused.value.code, refused.value.message


async def test_the_key_alone_opens_its_workspace_in_each_header_form(
    tenant: Tenant, store: Store
) -> None:
    key = tenant.api_key
    forms = [
        {"x-api-key": key},
        {"Authorization": f"Bearer {key}"},
        {"Authorization": f"Token {key}"},
        {"authorization": f"tOkEn {key}"},
    ]
    for headers in forms:
        creds = await key_only_credentials(store, Headers(headers))
        assert creds == Credentials(tenant.id, key, "api_key")
        workspace = await credentials_workspace(store, creds)
        assert workspace.id == tenant.id and workspace.alias is not None


async def test_no_key_or_an_unknown_key_is_the_same_401(tenant: Tenant, store: Store) -> None:
    refusals = {
        await _refusal(key_only_credentials(store, Headers(headers)))
        for headers in (
            {},
            {"x-api-key": "od_no-workspace-has-this-key"},
            {"Authorization": "Bearer od_no-workspace-has-this-key"},
            {"Authorization": f"Basic {tenant.api_key}"},  # not a scheme that carries a key
            {"Authorization": "Token "},
            # the workspace's integration token is no API key
            {"x-api-key": _hook_token(tenant.integration_url)},
        )
    }
    assert refusals == {(401, "UNAUTHORIZED", "API key not recognised")}


async def test_a_disabled_workspace_is_refused_through_key_and_token(
    tenant: Tenant, client: httpx.AsyncClient, store: Store
) -> None:
    disabled = await client.patch(
        f"/v1/admin/workspaces/{tenant.id}", json={"disabled": True}, headers=ADMIN
    )
    assert disabled.status_code == 200, disabled.text
    by_key = await key_only_credentials(store, Headers({"x-api-key": tenant.api_key}))
    by_token = await hook_credentials(store, _hook_token(tenant.integration_url))
    for creds in (by_key, by_token):
        status, code, _ = await _refusal(credentials_workspace(store, creds))
        assert (status, code) == (403, "WORKSPACE_DISABLED")


async def test_the_integration_token_opens_its_workspace_and_only_its_hash_is_stored(
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    created = await _created(client)
    url = created["integrationBaseUrl"]
    token = _hook_token(url)
    assert url == integration_base_url(settings.public_url, token)
    assert token.startswith("hk_") and len(token) == 35
    creds = await hook_credentials(store, token)
    assert creds == Credentials(created["workspaceId"], token, "hook_token")
    assert (await credentials_workspace(store, creds)).id == created["workspaceId"]
    # Shown once: no later answer holds it, and Redis holds only its hash.
    shown = await client.get(f"/v1/admin/workspaces/{created['workspaceId']}", headers=ADMIN)
    listed = await client.get("/v1/admin/workspaces", headers=ADMIN)
    assert token not in shown.text and token not in listed.text
    keys = Keys(settings.redis_prefix)
    stored = redis_client.hgetall(keys.workspace(created["workspaceId"]))
    assert all(token.encode() not in value for value in stored.values())
    assert stored[b"hook_token_hash"] == hash_api_key(token).encode()
    every_value = [
        redis_client.dump(key) or b""
        for key in redis_client.scan_iter(match=f"{settings.redis_prefix}*")
    ]
    assert all(token.encode() not in value for value in every_value)


async def test_what_cannot_be_a_token_is_refused_without_a_read(settings: Settings) -> None:
    # A store on a port nothing listens on: any read would raise, not answer 401.
    unreachable = open_store(
        Settings(REDIS_URL="redis://127.0.0.1:1/0", OUTDIAL_REDIS_PREFIX=settings.redis_prefix)
    )
    try:
        for text in (
            "",
            "hk_short",
            "hk_" + "a" * 33,
            "hk_" + "é" * 32,
            "x" * 35,
            "hk_" + "/" * 32,
        ):
            assert await _refusal(hook_credentials(unreachable, text)) == (
                401,
                "UNAUTHORIZED",
                "API key not recognised",
            )
    finally:
        await unreachable.aclose()


async def test_rotations_retire_the_old_key_and_token_and_their_index_entries(
    tenant: Tenant,
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    keys = Keys(settings.redis_prefix)
    old_token = _hook_token(tenant.integration_url)
    rotated = await client.post(
        f"/v1/admin/workspaces/{tenant.id}/rotate-hook-token", headers=ADMIN
    )
    assert rotated.status_code == 200, rotated.text
    assert set(rotated.json()) == {"workspaceId", "integrationBaseUrl"}
    new_token = _hook_token(rotated.json()["integrationBaseUrl"])
    assert await _refusal(hook_credentials(store, old_token)) == (
        401,
        "UNAUTHORIZED",
        "API key not recognised",
    )
    assert not redis_client.exists(keys.hook_token(hash_api_key(old_token)))
    assert redis_client.get(keys.hook_token(hash_api_key(new_token))) == tenant.id.encode()
    opened = await credentials_workspace(store, await hook_credentials(store, new_token))
    assert opened.id == tenant.id
    # The API key is untouched by the token's rotation, and its own rotation retires it.
    assert (await key_only_credentials(store, Headers({"x-api-key": tenant.api_key}))).workspace_id
    key_rotated = await client.post(f"/v1/admin/workspaces/{tenant.id}/rotate-key", headers=ADMIN)
    new_key = key_rotated.json()["apiKey"]
    status, code, _ = await _refusal(
        key_only_credentials(store, Headers({"Authorization": f"Bearer {tenant.api_key}"}))
    )
    assert (status, code) == (401, "UNAUTHORIZED")
    assert not redis_client.exists(keys.api_key(hash_api_key(tenant.api_key)))
    creds = await key_only_credentials(store, Headers({"Authorization": f"Token {new_key}"}))
    assert (await credentials_workspace(store, creds)).id == tenant.id
    missing = await client.post("/v1/admin/workspaces/ws_none/rotate-hook-token", headers=ADMIN)
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")


async def test_concurrent_token_rotations_leave_exactly_one_valid_token(
    tenant: Tenant,
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    path = f"/v1/admin/workspaces/{tenant.id}/rotate-hook-token"
    answers = await asyncio.gather(*(client.post(path, headers=ADMIN) for _ in range(4)))
    tokens = [_hook_token(answer.json()["integrationBaseUrl"]) for answer in answers]
    valid = []
    for token in tokens:
        try:
            await credentials_workspace(store, await hook_credentials(store, token))
        except ApiError as refused:
            assert refused.status == 401
        else:
            valid.append(token)
    assert len(valid) == 1
    index = list(redis_client.scan_iter(match=f"{settings.redis_prefix}:hooktoken:*"))
    assert index == [Keys(settings.redis_prefix).hook_token(hash_api_key(valid[0])).encode()]


async def test_a_workspace_without_a_token_opens_to_none_until_one_is_rotated(
    tenant: Tenant,
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    """A workspace created before integration tokens: no `hook_token_hash`. Even an index
    entry naming it (one left over, or planted) opens nothing."""
    keys = Keys(settings.redis_prefix)
    token = _hook_token(tenant.integration_url)
    redis_client.hdel(keys.workspace(tenant.id), "hook_token_hash")
    creds = await hook_credentials(store, token)  # the index entry still names it
    assert (await _refusal(credentials_workspace(store, creds)))[:2] == (401, "UNAUTHORIZED")
    rotated = await client.post(
        f"/v1/admin/workspaces/{tenant.id}/rotate-hook-token", headers=ADMIN
    )
    first = _hook_token(rotated.json()["integrationBaseUrl"])
    assert (
        await credentials_workspace(store, await hook_credentials(store, first))
    ).id == tenant.id


async def test_a_token_whose_index_names_another_workspace_is_refused(
    tenant: Tenant, client: httpx.AsyncClient, store: Store
) -> None:
    other = await create_tenant(client, "other")
    token = _hook_token(other.integration_url)
    planted = Credentials(tenant.id, token, "hook_token")
    status, code, _ = await _refusal(credentials_workspace(store, planted))
    assert (status, code) == (403, "PERMISSION_DENIED")


async def test_concurrent_creations_get_distinct_aliases(
    client: httpx.AsyncClient, store: Store
) -> None:
    created = await asyncio.gather(*(_created(client) for _ in range(20)))
    aliases = [workspace["alias"] for workspace in created]
    assert len(set(aliases)) == 20 and all(isinstance(alias, int) for alias in aliases)
    listed = (await client.get("/v1/admin/workspaces", headers=ADMIN)).json()["workspaces"]
    assert {w["workspaceId"]: w["alias"] for w in listed} == {
        w["workspaceId"]: w["alias"] for w in created
    }


async def test_a_workspace_from_before_aliases_gets_one_when_first_shown(
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    keys = Keys(settings.redis_prefix)
    old, newer = await _created(client), await _created(client)
    # As a workspace created before aliases: no alias field, no index entry.
    redis_client.hdel(keys.workspace(old["workspaceId"]), "alias")
    listed = await asyncio.gather(
        *(client.get("/v1/admin/workspaces", headers=ADMIN) for _ in range(5))
    )
    given = {
        w["alias"]
        for answer in listed
        for w in answer.json()["workspaces"]
        if w["workspaceId"] == old["workspaceId"]
    }
    assert len(given) == 1  # concurrent first views agree
    alias = given.pop()
    assert alias > newer["alias"]
    shown = await client.get(f"/v1/admin/workspaces/{old['workspaceId']}", headers=ADMIN)
    assert shown.json()["alias"] == alias
    # The key-only path gives one too (and the same one).
    redis_client.hdel(keys.workspace(newer["workspaceId"]), "alias")
    creds = await key_only_credentials(store, Headers({"x-api-key": newer["apiKey"]}))
    again = (await credentials_workspace(store, creds)).alias
    assert again is not None and again > alias


async def test_place_call_takes_integration_token_credentials(
    tenant: Tenant, store: Store, settings: Settings, lk: Any
) -> None:
    """`place_call` unchanged, for the vendor routes: credentials of either kind."""
    agent = await tenant.create_agent()
    await tenant.register_number()
    body = json.dumps({"to": "+14155550123", "call_agent_id": agent["id"]}).encode()
    creds = await hook_credentials(store, _hook_token(tenant.integration_url))
    answer = await place_call(store, settings, creds, body, None)
    assert answer["status"] == "success"
    view = await tenant.request("GET", f"/v1/api/call/{answer['callId']}")
    assert view.status_code == 200, view.text
    # The token is no API key, and the key no token.
    as_key = Credentials(tenant.id, _hook_token(tenant.integration_url), "api_key")
    assert (await _refusal(place_call(store, settings, as_key, body, None)))[:2] == (
        401,
        "UNAUTHORIZED",
    )
    as_token = Credentials(tenant.id, tenant.api_key, "hook_token")
    assert (await _refusal(place_call(store, settings, as_token, body, None)))[:2] == (
        401,
        "UNAUTHORIZED",
    )
