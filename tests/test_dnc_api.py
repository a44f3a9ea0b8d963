"""The do-not-call list over HTTP (`/v1/api/dnc`), the accept's refusal (`DO_NOT_CALL`, the
native and a vendor route, now and for later), a scheduled call whose number is listed
before its time, and the agent's opt-out event: real API, real Redis, a real worker, the
LiveKit test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from api.security import event_token
from api.settings import Settings
from api.store.keys import Keys
from tests.callback_receiver import Receiver
from tests.calls import wait_status
from tests.conftest import Tenant, create_tenant
from tests.support import WorkerProcess, async_wait_until, redis_snapshot

# The list's limit in this module: one full request fills it.
LIMIT = 10_000
CALLEE = "+14155552671"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"dnc_max_numbers": LIMIT})


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    await tenant.register_number("+15105550100")
    return await tenant.create_agent()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def add(tenant: Tenant, numbers: list[Any]) -> Any:
    return await tenant.request("POST", "/v1/api/dnc", json={"numbers": numbers})


async def test_an_add_accounts_for_every_item_and_the_list_reads_back(tenant: Tenant) -> None:
    numbers = ["+1 (415) 555-2671", "not a number", "0014155550199", "+1415", CALLEE, ""]
    response = await add(tenant, numbers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["added"], body["alreadyListed"]) == (2, 1)
    assert [(item["index"], item["number"]) for item in body["invalid"]] == [
        (1, "not a number"),
        (3, "+1415"),
        (5, ""),
    ]
    assert all(item["reason"] for item in body["invalid"])
    again = (await add(tenant, [CALLEE])).json()
    assert (again["added"], again["alreadyListed"], again["invalid"]) == (0, 1, [])

    listed = (await tenant.request("GET", "/v1/api/dnc")).json()
    assert [entry["number"] for entry in listed["numbers"]] == [
        "+14155550199",
        CALLEE,
    ]
    assert {entry["source"] for entry in listed["numbers"]} == {"api"}
    assert listed["total"] == 2 and listed["nextCursor"] is None
    first = (await tenant.request("GET", "/v1/api/dnc", params={"limit": 1})).json()
    assert first["nextCursor"] == "+14155550199"
    rest = await tenant.request("GET", "/v1/api/dnc", params={"cursor": first["nextCursor"]})
    assert [entry["number"] for entry in rest.json()["numbers"]] == [CALLEE]

    # One number in any written form; unlisted is 404, not a number 400.
    found = await tenant.request("GET", "/v1/api/dnc/+1 415 555 2671")
    assert found.status_code == 200 and found.json()["number"] == CALLEE
    assert found.json()["addedAt"].endswith("Z")
    missing = await tenant.request("GET", "/v1/api/dnc/+14155550100")
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    bad = await tenant.request("GET", "/v1/api/dnc/abc")
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_NUMBER")

    removed = await tenant.request("DELETE", f"/v1/api/dnc/{CALLEE}")
    assert removed.status_code == 204
    again_removed = await tenant.request("DELETE", f"/v1/api/dnc/{CALLEE}")
    assert (again_removed.status_code, again_removed.json()["code"]) == (404, "NOT_FOUND")
    assert (await tenant.request("GET", "/v1/api/dnc")).json()["total"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"numbers": []},
        {"numbers": [CALLEE] * (LIMIT + 1)},
        {"numbers": [12345]},
        {"numbers": ["+1" + "4" * 70]},
        {"numbers": [CALLEE], "source": "import"},
        {},
    ],
    ids=["empty", "too_many", "not_text", "too_long", "unknown_field", "no_numbers"],
)
async def test_a_bad_body_is_a_validation_error_and_writes_nothing(
    tenant: Tenant, redis_client: redis.Redis, settings: Settings, body: dict[str, Any]
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await tenant.request("POST", "/v1/api/dnc", json=body)
    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_a_bad_cursor_is_a_validation_error(tenant: Tenant) -> None:
    response = await tenant.request("GET", "/v1/api/dnc", params={"cursor": "+1:x"})
    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")


async def test_a_full_request_fills_the_list_and_the_next_number_is_refused_whole(
    tenant: Tenant, redis_client: redis.Redis, settings: Settings
) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(LIMIT)]
    response = await add(tenant, numbers)
    assert response.status_code == 200, response.text
    assert response.json()["added"] == LIMIT
    keys = Keys(settings.redis_prefix)

    def the_list() -> tuple[Any, ...]:
        # Contents, not DUMPs: a read may move a hash this large on in its rehashing.
        return (
            redis_client.hgetall(keys.do_not_call(tenant.id)),
            redis_client.zrange(keys.do_not_call_order(tenant.id), 0, -1),
            sorted(redis_client.scan_iter(match=f"{settings.redis_prefix}*", count=1000)),
        )

    before = the_list()
    refused = await add(tenant, [numbers[0], "+14155560100", "+14155560101"])
    body = refused.json()
    assert (refused.status_code, body["code"]) == (409, "DNC_LIST_FULL")
    assert body["details"] == {"limit": LIMIT, "size": LIMIT}
    assert the_list() == before
    # Numbers listed already fit: nothing new.
    assert (await add(tenant, numbers[:3])).json()["alreadyListed"] == 3


async def test_a_call_to_a_listed_number_is_refused_and_writes_nothing(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    assert (await add(tenant, [CALLEE])).status_code == 200
    before = redis_snapshot(redis_client, settings.redis_prefix)
    for body in (
        {"to": CALLEE},
        {"to": "+1 415-555-2671"},  # the stored form is what is checked
        {"to": CALLEE, "delay_seconds": 86_400},  # for tomorrow
    ):
        response = await tenant.place_call(call_agent_id=agent["id"], **body)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "DO_NOT_CALL"
        assert response.json()["details"] == {"to": CALLEE}
    # The vendor routes go through the same accept, and answer in their own shape.
    vendor = await tenant.http.post(
        "/initiateCall",
        json={"phone_number": CALLEE, "agent_id": agent["id"]},
        headers={"x-api-key": tenant.api_key},
    )
    assert vendor.status_code == 403
    assert vendor.json()["message"] == "Phone number on the do-not-call list"
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    # Another number goes; so does this one for another workspace, and once removed.
    assert (await tenant.place_call(to="+14155550199", call_agent_id=agent["id"])).is_success
    other = await create_tenant(tenant.http, "other")
    await other.register_number("+15105550101")
    other_agent = await other.create_agent()
    assert (await other.place_call(to=CALLEE, call_agent_id=other_agent["id"])).is_success
    assert (await tenant.request("DELETE", f"/v1/api/dnc/{CALLEE}")).status_code == 204
    assert (await tenant.place_call(to=CALLEE, call_agent_id=agent["id"])).is_success


async def test_a_workspace_sees_and_changes_only_its_own_list(tenant: Tenant) -> None:
    await add(tenant, [CALLEE])
    other = await create_tenant(tenant.http, "other")
    assert (await other.request("GET", "/v1/api/dnc")).json() == {
        "numbers": [],
        "nextCursor": None,
        "total": 0,
    }
    assert (await other.request("GET", f"/v1/api/dnc/{CALLEE}")).status_code == 404
    assert (await other.request("DELETE", f"/v1/api/dnc/{CALLEE}")).status_code == 404
    assert (await tenant.request("GET", f"/v1/api/dnc/{CALLEE}")).status_code == 200


async def test_a_call_listed_before_its_time_is_canceled_never_rung_and_says_why(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    settings: Settings,
    redis_client: redis.Redis,
    receiver: Receiver,
    worker: WorkerProcess,
) -> None:
    accepted = await tenant.place_call(
        to=CALLEE,
        call_agent_id=agent["id"],
        delay_seconds=86_400,
        callback_url=f"{receiver.url}/cb",
    )
    assert accepted.status_code == 200, accepted.text
    call_id = accepted.json()["callId"]
    assert (await add(tenant, [CALLEE])).status_code == 200
    # Due now instead of tomorrow: the scheduler claims it, the dispatch admits it or not.
    moved = await tenant.request("PATCH", f"/v1/api/call/{call_id}", json={"delay_seconds": 0})
    assert moved.status_code == 200, moved.text

    view = await wait_status(tenant, call_id, {"canceled", "dispatching", "dialing"})
    assert (view["status"], view["endReason"]) == ("canceled", "do_not_call")

    def told() -> bool:
        return any(p["type"] == "call.canceled" for p in receiver.delivered("/cb"))

    await async_wait_until(told, timeout=20, what="call.canceled delivered")
    (canceled,) = [p for p in receiver.delivered("/cb") if p["type"] == "call.canceled"]
    assert canceled["data"]["reason"] == "do_not_call"
    assert lk.count("RoomService", "CreateRoom") == 0
    assert lk.count("SIP", "CreateSIPParticipant") == 0
    keys = Keys(settings.redis_prefix)
    assert redis_client.zcard(keys.trunk_slots(view["sipTrunkId"])) == 0
    assert redis_client.zcard(keys.workspace_slots(tenant.id)) == 0


async def test_an_opt_out_lists_the_calls_own_number_once_and_the_call_says_so(
    tenant: Tenant, agent: dict[str, Any], settings: Settings
) -> None:
    accepted = await tenant.place_call(to=CALLEE, call_agent_id=agent["id"])
    call_id = accepted.json()["callId"]
    # What the agent's data names does not matter: the call's own number is listed.
    response = await tenant.http.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"id": "opt-out-0001", "type": "call.opted_out", "data": {"number": "+14155550100"}},
        headers={"Authorization": f"Bearer {event_token(call_id, settings.event_signing_key)}"},
    )
    assert response.status_code == 200, response.text
    # The agent's retry of the same event adds nothing and records nothing twice.
    retried = await tenant.http.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"id": "opt-out-0001", "type": "call.opted_out", "data": {"number": "+14155550100"}},
        headers={"Authorization": f"Bearer {event_token(call_id, settings.event_signing_key)}"},
    )
    assert retried.status_code == 200, retried.text
    listed = (await tenant.request("GET", "/v1/api/dnc")).json()
    assert [(e["number"], e["source"]) for e in listed["numbers"]] == [(CALLEE, "opt_out")]
    events = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()["events"]
    assert [e["type"] for e in events].count("call.opted_out") == 1
    # From now on no call to it is accepted.
    again = await tenant.place_call(to=CALLEE, call_agent_id=agent["id"])
    assert (again.status_code, again.json()["code"]) == (403, "DO_NOT_CALL")


async def test_a_batch_refuses_the_listed_items_only(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    await add(tenant, [CALLEE])
    items = [
        {"to": "+14155550199", "call_agent_id": agent["id"]},
        {"to": "+1 415 555 2671", "call_agent_id": agent["id"]},
        {"to": CALLEE, "call_agent_id": agent["id"], "delay_seconds": 3600},
    ]
    response = await tenant.request("POST", "/v1/api/calls/batch", json=items)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (1, 2)
    results = body["results"]
    assert results[0]["status"] == "success"
    for refused in results[1:]:
        assert (refused["httpStatus"], refused["code"]) == (403, "DO_NOT_CALL")
        assert refused["details"] == {"to": CALLEE}
    listed = (await tenant.request("GET", "/v1/api/calls")).json()["calls"]
    assert [call["callId"] for call in listed] == [results[0]["callId"]]
