"""`POST /initiateCall` (VoiceGenie's shape) against a live API: the vendor's example request
becomes a dial with its variables; every refusal is VoiceGenie's shape and stores nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from tests.compat import CALLER, CompatTenant, compat_tenant, dial_of, disable
from tests.support import WorkerProcess, redis_snapshot

# The vendor's documented example, as its clients send it.
EXAMPLE = {
    "phone_number": "+14155552671",
    "agent_id": "",  # the test's agent
    "custom_data": {"full_name": "Ada Lovelace", "topic": "the dentist", "visits": 3},
}


@pytest.fixture
async def ws(client: httpx.AsyncClient) -> CompatTenant:
    return await compat_tenant(client)


def example(ws: CompatTenant, **changes: Any) -> dict[str, Any]:
    return EXAMPLE | {"agent_id": ws.agent_id} | changes


@pytest.mark.dial_immediately
async def test_the_vendor_example_is_dialed_with_its_variables(
    client: httpx.AsyncClient, ws: CompatTenant, lk: Any, worker: WorkerProcess
) -> None:
    response = await client.post("/initiateCall", json=example(ws), headers={"x-api-key": ws.key})
    assert response.status_code == 200, response.text
    body = response.json()
    data = body.pop("data")
    assert body == {"success": True, "message": "Call initiated successfully"}
    assert data.keys() == {"call_uuid", "status", "phone_number", "agent_id", "initiated_at"}
    assert (data["status"], data["phone_number"], data["agent_id"]) == (
        "initiated",
        "+14155552671",
        ws.agent_id,
    )
    assert data["initiated_at"].endswith("Z")

    view = (await ws.tenant.request("GET", f"/v1/api/call/{data['call_uuid']}")).json()
    contract, dial = await dial_of(lk, view["roomName"])
    assert contract.call_id == data["call_uuid"]
    assert contract.dynamic_variables == EXAMPLE["custom_data"]
    assert (dial.sip_call_to, dial.sip_number) == ("+14155552671", CALLER)


@pytest.mark.parametrize("scheme", ["x-api-key", "Bearer", "Token", "token"])
async def test_the_key_alone_opens_the_workspace_in_every_header_form(
    client: httpx.AsyncClient, ws: CompatTenant, scheme: str
) -> None:
    headers = (
        {"x-api-key": ws.key} if scheme == "x-api-key" else {"Authorization": f"{scheme} {ws.key}"}
    )
    response = await client.post("/initiateCall", json=example(ws), headers=headers)
    assert response.status_code == 200, response.text
    call_id = response.json()["data"]["call_uuid"]
    assert (await ws.tenant.request("GET", f"/v1/api/call/{call_id}")).status_code == 200


async def test_the_integration_base_url_needs_no_header(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    response = await client.post(f"{ws.hook_path}/initiateCall", json=example(ws))
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "od_nobodys_key"}, {"Authorization": "Basic abc"}, {"x-api-key": ""}],
    ids=["none", "unknown", "basic", "empty"],
)
async def test_a_missing_or_unknown_key_is_the_same_401(
    client: httpx.AsyncClient, ws: CompatTenant, headers: dict[str, str]
) -> None:
    response = await client.post("/initiateCall", json=example(ws), headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert (body["success"], body["message"]) == (False, "Unauthorized")
    # one answer whatever was sent: nothing tells whether a workspace exists
    unknown = await client.post("/initiateCall", json=example(ws), headers={"x-api-key": "x"})
    assert unknown.json() == body


async def test_a_wrong_integration_token_is_the_same_401(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    good = ws.hook_path.rsplit("/", 1)[1]
    for token in ("hk_" + "A" * 43, good[:-1] + ("B" if good[-1] != "B" else "C"), "x" * 300):
        response = await client.post(f"/hooks/{token}/initiateCall", json=example(ws))
        assert response.status_code == 401, token
        assert response.json()["message"] == "Unauthorized"


async def test_a_disabled_workspace_is_refused_by_key_and_by_url(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    await disable(client, ws.tenant.id)
    by_key = await client.post("/initiateCall", json=example(ws), headers={"x-api-key": ws.key})
    by_url = await client.post(f"{ws.hook_path}/initiateCall", json=example(ws))
    for response in (by_key, by_url):
        assert response.status_code == 403
        assert response.json()["message"] == "Account disabled"


BAD_INPUTS = [
    (
        {"phone_number": "4155552671"},
        400,
        "Invalid phone number",
        "Phone number must be in E.164 format",
    ),
    (
        {"phone_number": "+1 415 555 2671"},
        400,
        "Invalid phone number",
        "Phone number must be in E.164 format",
    ),
    (
        {"phone_number": 14155552671},
        400,
        "Invalid phone number",
        "Phone number must be in E.164 format",
    ),
    (
        {"custom_data": {"list": [1, 2]}},
        400,
        "Invalid request",
        "custom_data.list must be a string, a number or a boolean",
    ),
    (
        {"custom_data": {"nested": {"a": 1}}},
        400,
        "Invalid request",
        "custom_data.nested must be a string, a number or a boolean",
    ),
    ({"custom_data": ["a"]}, 400, "Invalid request", "custom_data must be an object"),
    ({"custom_data": {"bad name": "x"}}, 400, "Invalid request", None),
    ({"agent_id": None}, 400, "Invalid request", "agent_id is required (a string)"),
    ({"agent_id": "agent_nobody"}, 404, "Agent not found", None),
]


@pytest.mark.parametrize(("change", "status", "message", "error"), BAD_INPUTS)
async def test_each_bad_input_is_voicegenies_error_and_stores_nothing(
    client: httpx.AsyncClient,
    ws: CompatTenant,
    settings: Settings,
    redis_client: redis.Redis,
    change: dict[str, Any],
    status: int,
    message: str,
    error: str | None,
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await client.post(
        "/initiateCall", json=example(ws, **change), headers={"x-api-key": ws.key}
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body.keys() == {"success", "message", "error"}
    assert (body["success"], body["message"]) == (False, message)
    if error is not None:
        assert body["error"] == error
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b"{", b'{"phone_number": NaN}', b"\xff", b"[" * 40_000, b'{"a":' * 10_000]
)
async def test_a_body_that_is_no_json_object_is_a_400(
    client: httpx.AsyncClient, ws: CompatTenant, raw: bytes
) -> None:
    response = await client.post(
        "/initiateCall",
        content=raw,
        headers={"x-api-key": ws.key, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_an_idempotent_retry_places_one_call(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    headers = {"x-api-key": ws.key, "Idempotency-Key": "retry-1"}
    first = await client.post("/initiateCall", json=example(ws), headers=headers)
    again = await client.post("/initiateCall", json=example(ws), headers=headers)
    assert first.json()["data"]["call_uuid"] == again.json()["data"]["call_uuid"]
    listed = (await ws.tenant.request("GET", "/v1/api/calls")).json()
    assert len(listed["calls"]) == 1
