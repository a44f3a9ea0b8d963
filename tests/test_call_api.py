"""POST /v1/api/call and friends over real HTTP against real Redis (no worker running)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import redis
from pydantic import ConfigDict

from api.schemas.calls import CallAccepted
from api.settings import Settings
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN, redis_snapshot


def stored(redis_client: redis.Redis, settings: Settings, tenant: Tenant) -> tuple[int, int]:
    """(calls in the workspace index, messages in the dial queue)."""
    calls = redis_client.zcard(f"{settings.redis_prefix}:ws:{tenant.id}:calls")
    queued = redis_client.llen(f"{settings.broker_namespace}:outdial.dial")
    return calls, queued


@pytest.fixture
async def ready(tenant: Tenant) -> dict[str, Any]:
    agent = await tenant.create_agent()
    await tenant.register_number("+15105550100")
    return agent


async def test_accepts_a_call_and_answers_with_ids(
    tenant: Tenant, ready: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    response = await tenant.place_call(
        to="+1 (415) 555-2671",
        call_agent_id=ready["id"],
        dynamic_variables={"firstName": "Ada", "count": 3},
        metadata={"crm_id": "42", "tags": []},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["message"] == (
        f"Outbound call job scheduled for agent {ready['id']} to number +14155552671"
    )
    assert re.fullmatch(r"[0-9a-f]{24}", body["callId"])
    assert re.fullmatch(re.escape(ready["id"]) + r"-[a-z0-9]{10}", body["roomName"])
    # The job id is the id of the Dramatiq message actually in the dial queue.
    queue = f"{settings.broker_namespace}:outdial.dial"
    assert redis_client.lrange(queue, 0, -1) == [body["jobId"].encode()]
    message = json.loads(redis_client.hget(f"{queue}.msgs", body["jobId"]))
    assert message["actor_name"] == "dispatch_call"
    assert message["args"] == [body["callId"]]

    call = (await tenant.request("GET", f"/v1/api/call/{body['callId']}")).json()
    assert call["status"] == "queued"
    assert call["to"] == "+14155552671"
    assert call["from"] == "+15105550100"
    assert call["jobId"] == body["jobId"]
    assert call["dynamicVariables"] == {"firstName": "Ada", "count": 3}
    assert call["metadata"] == {"crm_id": "42", "tags": []}
    assert set(call["transitions"]) == {"queued"}


async def _expect_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"to": "5105550123"}, 400, "INVALID_NUMBER"),
        ({"to": "+1 555"}, 400, "INVALID_NUMBER"),
        ({"call_agent_id": "0" * 24}, 404, "INVALID_AGENT"),
        ({"from_number": "+15105550199"}, 400, "INVALID_NUMBER_ID"),
        ({"callback_url": "ftp://example.com/hook"}, 400, "INVALID_CALLBACK_URL"),
        ({"callback_url": "https://user:pw@example.com/hook"}, 400, "INVALID_CALLBACK_URL"),
        ({"dynamic_variables": {"nested": {"a": 1}}}, 422, "VALIDATION_ERROR"),
        ({"dynamic_variables": {"bad-name": "x"}}, 422, "VALIDATION_ERROR"),
        ({"dynamic_variables": {"v" * 65: "x"}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"dynamic_variables": {f"v{i}": i for i in range(65)}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"metadata": {"blob": "x" * 17_000}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"dynamic_variables": {"a": "x" * 17_000}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"metadata": {"blob": "x" * 70_000}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"unexpected": 1}, 422, "VALIDATION_ERROR"),
        ({"max_duration_seconds": 1}, 422, "VALIDATION_ERROR"),
        ({"to": None}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_refused_calls_leave_nothing_behind(
    tenant: Tenant,
    ready: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
    fields: dict[str, Any],
    status: int,
    code: str,
) -> None:
    body = {"to": "+14155552671", "call_agent_id": ready["id"]} | fields
    body = {name: value for name, value in body.items() if value is not None}
    before = redis_snapshot(redis_client, settings.redis_prefix)
    await _expect_error(await tenant.place_call(**body), status, code)
    # Not one key under the test's prefix (store and broker) was written or added.
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    assert stored(redis_client, settings, tenant) == (0, 0)


async def test_callback_to_private_address_is_refused_without_the_flag(
    api_server: Any, settings: Settings, redis_client: redis.Redis
) -> None:
    from tests.support import ApiServer, free_port

    strict = settings.model_copy(update={"callback_allow_private": False})
    server = ApiServer(strict, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            tenant = await create_tenant(http)
            agent = await tenant.create_agent()
            await tenant.register_number()
            before = redis_snapshot(redis_client, strict.redis_prefix)
            for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/"):
                response = await tenant.place_call(
                    to="+14155552671", call_agent_id=agent["id"], callback_url=url
                )
                body = await _expect_error(response, 400, "INVALID_CALLBACK_URL")
                assert "non-public" in body["message"]
            assert redis_snapshot(redis_client, strict.redis_prefix) == before
            assert stored(redis_client, strict, tenant) == (0, 0)
    finally:
        server.stop()


async def test_body_over_64_kib_is_refused_before_parsing(tenant: Tenant) -> None:
    raw = b'{"to": "+14155552671", "padding": "' + b"x" * 70_000 + b'"}'
    response = await tenant.request(
        "POST", "/v1/api/call", content=raw, headers={"content-type": "application/json"}
    )
    await _expect_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_malformed_json_is_a_validation_error(tenant: Tenant) -> None:
    response = await tenant.request(
        "POST", "/v1/api/call", content=b"{not json", headers={"content-type": "application/json"}
    )
    body = await _expect_error(response, 422, "VALIDATION_ERROR")
    assert "detail" not in body  # FastAPI's default shape must not leak


async def test_no_caller_id_without_numbers_or_default_trunk(tenant: Tenant) -> None:
    agent = await tenant.create_agent()
    response = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    body = await _expect_error(response, 400, "INVALID_NUMBER_ID")
    assert "OUTDIAL_DEFAULT_SIP_TRUNK_ID" in body["message"]


async def test_idempotency_key_replays_and_conflicts(
    tenant: Tenant, ready: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    call = {"to": "+14155552671", "call_agent_id": ready["id"], "metadata": {"a": 1}}
    first = await tenant.place_call(**call, headers={"Idempotency-Key": "order-17"})
    again = await tenant.place_call(**call, headers={"Idempotency-Key": "order-17"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert stored(redis_client, settings, tenant) == (1, 1)

    changed = await tenant.place_call(
        **(call | {"metadata": {"a": 2}}), headers={"Idempotency-Key": "order-17"}
    )
    await _expect_error(changed, 409, "IDEMPOTENCY_CONFLICT")
    other = await tenant.place_call(**call, headers={"Idempotency-Key": "order-18"})
    assert other.json()["callId"] != first.json()["callId"]
    assert stored(redis_client, settings, tenant) == (2, 2)


class ExactlyCallAccepted(CallAccepted):
    """`CallAccepted` with no field beyond the documented ones."""

    model_config = ConfigDict(extra="forbid")


async def test_every_accept_answer_is_exactly_the_documented_model(
    tenant: Tenant, ready: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """The accept path builds its answer as a plain dict (no model on the hot path), so the
    answers themselves are held to `CallAccepted`, the model the OpenAPI document shows:
    the first answer and its idempotent replay, every field there and none more."""
    call = {"to": "+14155552671", "call_agent_id": ready["id"]}
    plain = await tenant.place_call(**call)
    first = await tenant.place_call(**call, headers={"Idempotency-Key": "order-21"})
    replay = await tenant.place_call(**call, headers={"Idempotency-Key": "order-21"})
    for answer in (plain, first, replay):
        assert answer.status_code == 200, answer.text
        ExactlyCallAccepted.model_validate_json(answer.content, strict=True)
    assert replay.json() == first.json()

    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/api/call"]["post"]
    documented = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert documented == CallAccepted.model_json_schema()
    assert set(documented["required"]) == set(documented["properties"])


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHORIZED"),
        ({"x-api-key": "od_wrong"}, 401, "UNAUTHORIZED"),
        # A valid key presented for a workspace it does not open.
        ({"x-workspace-id": "ws_nope"}, 403, "PERMISSION_DENIED"),
    ],
)
async def test_authentication_failures(
    client: httpx.AsyncClient, tenant: Tenant, headers: dict[str, str], status: int, code: str
) -> None:
    sent = {"x-workspace-id": tenant.id} | headers if headers else {}
    if "x-api-key" not in sent and "x-workspace-id" in headers:
        sent["x-api-key"] = tenant.api_key
    # The body is invalid too: credentials are judged first.
    response = await client.post("/v1/api/call", json={}, headers=sent)
    await _expect_error(response, status, code)


async def test_bearer_key_works_and_foreign_key_is_forbidden(client: httpx.AsyncClient) -> None:
    alpha = await create_tenant(client, "alpha")
    beta = await create_tenant(client, "beta")
    ok = await client.get(
        "/v1/api/agents",
        headers={"x-workspace-id": alpha.id, "Authorization": f"Bearer {alpha.api_key}"},
    )
    assert ok.status_code == 200
    foreign = await client.get(
        "/v1/api/agents", headers={"x-workspace-id": alpha.id, "x-api-key": beta.api_key}
    )
    await _expect_error(foreign, 403, "PERMISSION_DENIED")


async def test_cross_workspace_resources_are_invisible(client: httpx.AsyncClient) -> None:
    alpha = await create_tenant(client, "alpha")
    beta = await create_tenant(client, "beta")
    agent = await alpha.create_agent()
    await alpha.register_number()
    call = (await alpha.place_call(to="+14155552671", call_agent_id=agent["id"])).json()

    for method, path in [
        ("GET", f"/v1/api/agents/{agent['id']}"),
        ("PATCH", f"/v1/api/agents/{agent['id']}"),
        ("DELETE", f"/v1/api/agents/{agent['id']}"),
        ("GET", f"/v1/api/call/{call['callId']}"),
        ("POST", f"/v1/api/call/{call['callId']}/cancel"),
        ("DELETE", "/v1/api/numbers/+15105550100"),
    ]:
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await beta.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    refused = await beta.place_call(to="+14155552671", call_agent_id=agent["id"])
    await _expect_error(refused, 404, "INVALID_AGENT")
    assert (await beta.request("GET", "/v1/api/calls")).json()["calls"] == []
    assert (await beta.request("GET", "/v1/api/numbers")).json()["numbers"] == []
    assert (await alpha.request("GET", f"/v1/api/call/{call['callId']}")).status_code == 200


async def test_disabled_workspace_and_key_rotation(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    rotated = await client.post(f"/v1/admin/workspaces/{tenant.id}/rotate-key", headers=admin)
    new_key = rotated.json()["apiKey"]
    old = await tenant.request("GET", "/v1/api/agents")
    await _expect_error(old, 401, "UNAUTHORIZED")
    tenant.api_key = new_key
    assert (await tenant.request("GET", "/v1/api/agents")).status_code == 200

    await client.patch(f"/v1/admin/workspaces/{tenant.id}", json={"disabled": True}, headers=admin)
    await _expect_error(await tenant.request("GET", "/v1/api/agents"), 403, "WORKSPACE_DISABLED")
    await client.patch(f"/v1/admin/workspaces/{tenant.id}", json={"disabled": False}, headers=admin)
    assert (await tenant.request("GET", "/v1/api/agents")).status_code == 200


async def test_admin_requires_the_admin_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/admin/workspaces", json={"name": "x"})
    await _expect_error(response, 401, "UNAUTHORIZED")
    response = await client.post(
        "/v1/admin/workspaces", json={"name": "x"}, headers={"Authorization": "Bearer nope"}
    )
    await _expect_error(response, 401, "UNAUTHORIZED")


async def test_agent_crud_validates_templates(tenant: Tenant, settings: Settings) -> None:
    agent = await tenant.create_agent(first_message="Hi {{firstName|there}}!")
    assert re.fullmatch(r"[0-9a-f]{24}", agent["id"])
    assert agent["workerName"] == settings.agent_name

    bad = await tenant.request(
        "POST", "/v1/api/agents", json={"name": "x", "instructions": "Hello {% if x %}"}
    )
    await _expect_error(bad, 422, "VALIDATION_ERROR")
    bad = await tenant.request(
        "POST",
        "/v1/api/agents",
        json={"name": "x", "instructions": "ok", "voicemail_action": "leave_message"},
    )
    await _expect_error(bad, 422, "VALIDATION_ERROR")

    patched = await tenant.request(
        "PATCH", f"/v1/api/agents/{agent['id']}", json={"ring_timeout_seconds": 25}
    )
    assert patched.json()["ringTimeoutSeconds"] == 25
    assert patched.json()["firstMessage"] == "Hi {{firstName|there}}!"
    broken = await tenant.request(
        "PATCH", f"/v1/api/agents/{agent['id']}", json={"instructions": "{{ first name }}"}
    )
    await _expect_error(broken, 422, "VALIDATION_ERROR")
    listed = (await tenant.request("GET", "/v1/api/agents")).json()["agents"]
    assert [a["id"] for a in listed] == [agent["id"]]
    assert (await tenant.request("DELETE", f"/v1/api/agents/{agent['id']}")).status_code == 204
    assert (await tenant.request("GET", f"/v1/api/agents/{agent['id']}")).status_code == 404


async def test_numbers_default_and_caller_choice(tenant: Tenant) -> None:
    agent = await tenant.create_agent()
    first = await tenant.register_number("+1 510 555 0100", sip_trunk_id="ST_one")
    assert first["default"] is True and first["number"] == "+15105550100"
    second = await tenant.register_number("+15105550101", sip_trunk_id="ST_two", default=True)
    assert second["default"] is True
    numbers = {
        n["number"]: n for n in (await tenant.request("GET", "/v1/api/numbers")).json()["numbers"]
    }
    assert numbers["+15105550100"]["default"] is False

    default_call = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()
    chosen_call = (
        await tenant.place_call(
            to="+14155552671", call_agent_id=agent["id"], from_number="+15105550100"
        )
    ).json()
    default_view = (await tenant.request("GET", f"/v1/api/call/{default_call['callId']}")).json()
    chosen_view = (await tenant.request("GET", f"/v1/api/call/{chosen_call['callId']}")).json()
    assert (default_view["from"], default_view["sipTrunkId"]) == ("+15105550101", "ST_two")
    assert (chosen_view["from"], chosen_view["sipTrunkId"]) == ("+15105550100", "ST_one")

    bad = await tenant.request("POST", "/v1/api/numbers", json={"number": "+15105550102"})
    await _expect_error(bad, 422, "VALIDATION_ERROR")
    bad = await tenant.request(
        "POST", "/v1/api/numbers", json={"number": "12", "sip_trunk_id": "ST_x"}
    )
    await _expect_error(bad, 400, "INVALID_NUMBER")


async def test_number_with_trunk_spec_creates_the_livekit_trunk(tenant: Tenant, lk: Any) -> None:
    created = await tenant.register_number(
        "+15105550100",
        trunk={
            "address": "sip.example.net",
            "transport": "tcp",
            "auth_username": "u",
            "auth_password": "p",
        },
    )
    assert created["trunkManaged"] is True
    request = lk.requests("SIP", "CreateSIPOutboundTrunk")[0].request
    assert request.trunk.address == "sip.example.net"
    assert list(request.trunk.numbers) == ["+15105550100"]
    assert created["sipTrunkId"] in lk.trunks
    assert (await tenant.request("DELETE", "/v1/api/numbers/+15105550100")).status_code == 204
    assert lk.count("SIP", "DeleteSIPTrunk") == 1


async def test_deleting_a_number_whose_trunk_deletion_is_dropped(tenant: Tenant, lk: Any) -> None:
    created = await tenant.register_number("+15105550100")
    lk.inject("SIP", "DeleteSIPTrunk", drop=True)
    deleted = await tenant.request("DELETE", "/v1/api/numbers/+15105550100")
    # The number is deleted before the trunk: the connection LiveKit dropped does not undo
    # that, so the answer is the delete's (not a 500), and the trunk is left, logged.
    assert deleted.status_code == 204, deleted.text
    assert lk.count("SIP", "DeleteSIPTrunk") == 1
    assert created["sipTrunkId"] in lk.trunks
    assert (await tenant.request("GET", "/v1/api/numbers")).json() == {"numbers": []}
    again = await tenant.request("DELETE", "/v1/api/numbers/+15105550100")
    await _expect_error(again, 404, "NOT_FOUND")


async def test_list_calls_filters_and_paginates(tenant: Tenant) -> None:
    agent_a = await tenant.create_agent()
    agent_b = await tenant.create_agent(name="Other")
    await tenant.register_number()
    placed = []
    for index in range(5):
        agent = agent_a if index % 2 == 0 else agent_b
        response = await tenant.place_call(
            to="+14155552671",
            call_agent_id=agent["id"],
            campaign_id="spring" if index < 2 else None,
        )
        placed.append(response.json()["callId"])

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await tenant.request("GET", "/v1/api/calls", params=params)).json()
        seen += [call["callId"] for call in page["calls"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(placed))

    by_agent = (
        await tenant.request("GET", "/v1/api/calls", params={"agent_id": agent_b["id"]})
    ).json()
    assert [c["callId"] for c in by_agent["calls"]] == [placed[3], placed[1]]
    by_campaign = (
        await tenant.request("GET", "/v1/api/calls", params={"campaign_id": "spring"})
    ).json()
    assert [c["callId"] for c in by_campaign["calls"]] == [placed[1], placed[0]]
    by_status = (await tenant.request("GET", "/v1/api/calls", params={"status": "failed"})).json()
    assert by_status["calls"] == []


async def test_cancel_before_dispatch(tenant: Tenant, ready: dict[str, Any]) -> None:
    call = (await tenant.place_call(to="+14155552671", call_agent_id=ready["id"])).json()
    response = await tenant.request("POST", f"/v1/api/call/{call['callId']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    again = await tenant.request("POST", f"/v1/api/call/{call['callId']}/cancel")
    await _expect_error(again, 409, "CALL_ALREADY_ENDED")
    view = (await tenant.request("GET", f"/v1/api/call/{call['callId']}")).json()
    assert view["status"] == "canceled" and view["endReason"] == "canceled_by_client"


async def test_redis_unreachable_is_a_503_to_retry_and_not_ready(
    api_server: Any, settings: Settings
) -> None:
    from tests.support import ApiServer, free_port

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    server = ApiServer(broken, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post(
                "/v1/api/call",
                json={"to": "+14155552671", "call_agent_id": "x"},
                headers={"x-workspace-id": "ws_x", "x-api-key": "od_x"},
            )
            await _expect_error(response, 503, "SERVICE_UNAVAILABLE")
            assert response.headers["Retry-After"] == "1"
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"].startswith("error")
    finally:
        server.stop()


async def test_default_trunk_is_the_fallback_caller(settings: Settings, lk: Any) -> None:
    from tests.support import ApiServer, free_port

    with_trunk = settings.model_copy(update={"default_sip_trunk_id": "ST_fallback"})
    server = ApiServer(with_trunk, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            tenant = await create_tenant(http)
            agent = await tenant.create_agent()
            # The operator's trunk is only for the workspaces it is assigned to.
            refused = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
            await _expect_error(refused, 403, "TRUNK_NOT_ASSIGNED")
            await tenant.assign_trunk("ST_fallback")
            accepted = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
            assert accepted.status_code == 200, accepted.text
            view = (await tenant.request("GET", f"/v1/api/call/{accepted.json()['callId']}")).json()
            assert (view["sipTrunkId"], view["from"]) == ("ST_fallback", None)
            # An explicit from_number must still be registered: no silent fallback.
            refused = await tenant.place_call(
                to="+14155552671", call_agent_id=agent["id"], from_number="+15105550100"
            )
            await _expect_error(refused, 400, "INVALID_NUMBER_ID")
    finally:
        server.stop()


async def test_the_accept_route_refuses_other_methods_and_is_documented(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.get("/v1/api/call")
    body = await _expect_error(refused, 405, "METHOD_NOT_ALLOWED")
    assert refused.headers["allow"] == "POST"
    assert body["message"] == "use POST"
    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/api/call"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["to", "call_agent_id"]
    assert "dynamic_variables" in schema["properties"]
    assert {"200", "401", "409", "503"} <= set(operation["responses"])
