"""Calls placed for later, end to end: real API, real Redis, a real worker (its scheduler
thread claims due calls), the LiveKit test server recording when each dial arrives.

The dial mode is `immediate` here so the dial follows the claim without an agent; how late
after its time a call is dialed is measured in bench/, not bounded here: the tests check it
is never early."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from api.settings import Settings
from api.store.call_fields import CALL_STATUSES
from api.store.scheduled_calls import MAX_EVENTS_WHEN_MOVED
from tests.calls import call_status, dial_times, ms_from_iso, wait_dialed, wait_status
from tests.conftest import Tenant
from tests.support import WorkerProcess, async_wait_until, redis_snapshot


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"dial_mode": "immediate"})


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    await tenant.register_number("+15105550100")
    return await tenant.create_agent()


def _rooms_created(lk: Any, room_name: str) -> int:
    return sum(1 for r in lk.requests("RoomService", "CreateRoom") if r.request.name == room_name)


async def _events(tenant: Tenant, call_id: str) -> list[str]:
    response = await tenant.request("GET", f"/v1/api/call/{call_id}/events")
    return [event["type"] for event in response.json()["events"]]


def _due_members(redis_client: redis.Redis, settings: Settings) -> set[bytes]:
    return set(redis_client.zrange(f"{settings.redis_prefix}:scheduled:due", 0, -1))


async def test_a_call_scheduled_ahead_waits_then_is_dialed_never_before_its_time(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    before = time.time()
    accepted = (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], delay_seconds=2)
    ).json()
    after = time.time()
    call_id = accepted["callId"]
    view = await call_status(tenant, call_id)
    assert view["status"] == "scheduled"
    assert view["scheduledReason"] == "scheduled_time"
    due_ms = ms_from_iso(view["scheduledAt"])
    assert before * 1000 + 2000 <= due_ms + 1 and due_ms <= after * 1000 + 2000
    # listed, and filtered by its status
    listed = (await tenant.request("GET", "/v1/api/calls", params={"status": "scheduled"})).json()
    assert [call["callId"] for call in listed["calls"]] == [call_id]

    await wait_dialed(tenant, call_id)
    (dialed_at,) = dial_times(lk, accepted["roomName"])
    assert dialed_at * 1000 >= due_ms
    view = await call_status(tenant, call_id)
    assert ms_from_iso(view["transitions"]["queued"]) >= due_ms
    assert view["jobId"] == accepted["jobId"]  # the message the claim wrote is the accept's
    assert (await _events(tenant, call_id))[:3] == [
        "call.scheduled",
        "call.queued",
        "call.dispatching",
    ]


async def test_a_time_in_the_past_dials_at_once(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    accepted = (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], scheduled_at=past)
    ).json()
    view = await call_status(tenant, accepted["callId"])
    assert "scheduled" not in view["transitions"]
    assert view["scheduledAt"] is None
    await wait_dialed(tenant, accepted["callId"])


async def test_a_call_canceled_while_scheduled_is_never_dispatched(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    worker: WorkerProcess,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    body = {"to": "+14155552671", "call_agent_id": agent["id"], "delay_seconds": 2}
    canceled = (await tenant.place_call(**body)).json()
    assert _due_members(redis_client, settings) == {canceled["callId"].encode()}
    response = await tenant.request("POST", f"/v1/api/call/{canceled['callId']}/cancel")
    assert response.json()["status"] == "canceled"
    assert _due_members(redis_client, settings) == set()  # left the set in the same step
    # A call due at the same time or later is dialed: the scheduler passed the first's time.
    later = (await tenant.place_call(**body)).json()
    await wait_dialed(tenant, later["callId"])
    assert _rooms_created(lk, canceled["roomName"]) == 0
    assert await _events(tenant, canceled["callId"]) == ["call.scheduled", "call.canceled"]
    moved = await tenant.request(
        "PATCH", f"/v1/api/call/{canceled['callId']}", json={"delay_seconds": 5}
    )
    assert moved.status_code == 409
    assert moved.json()["code"] == "CALL_NOT_SCHEDULED"


async def test_a_call_moved_while_scheduled_is_dialed_at_its_new_time_only(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    accepted = (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], delay_seconds=3600)
    ).json()
    call_id = accepted["callId"]
    before = time.time()
    moved = await tenant.request("PATCH", f"/v1/api/call/{call_id}", json={"delay_seconds": 2})
    assert moved.status_code == 200, moved.text
    new_due_ms = ms_from_iso(moved.json()["scheduledAt"])
    assert before * 1000 + 2000 <= new_due_ms + 1 and new_due_ms <= time.time() * 1000 + 2000
    assert moved.json()["status"] == "scheduled"
    await wait_dialed(tenant, call_id)
    (dialed_at,) = dial_times(lk, accepted["roomName"])
    assert dialed_at * 1000 >= new_due_ms
    events = await _events(tenant, call_id)
    assert events[:3] == ["call.scheduled", "call.scheduled", "call.queued"]
    again = await tenant.request("PATCH", f"/v1/api/call/{call_id}", json={"delay_seconds": 2})
    assert again.status_code == 409
    assert again.json()["details"]["status"] == "dialing"


@pytest.mark.parametrize(
    "fields",
    [
        {"scheduled_at": "2030-01-01T09:00:00"},  # no offset
        {"scheduled_at": "tomorrow"},
        {"delay_seconds": -1},
        {"delay_seconds": 30 * 86_400 + 1},
        {"delay_seconds": 60, "scheduled_at": "2030-01-01T09:00:00Z"},
        {"scheduled_at": "9999-12-31T23:59:59Z"},  # beyond reach (30 days)
        {
            "scheduled_at": "9999-12-31T23:59:59Z",
            "call_window": {"days": ["mon"], "start": "09:00", "end": "17:00"},
        },
    ],
)
async def test_bad_times_are_refused_and_write_nothing(
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
    fields: dict[str, Any],
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], **fields)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"delay_seconds": 5, "scheduled_at": "2030-01-01T09:00:00Z"},
        {"delay_seconds": "x"},
        {"scheduled_at": "9999-12-31T23:59:59Z"},
    ],
)
async def test_a_bad_move_is_refused_and_changes_nothing(
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
    body: dict[str, Any],
) -> None:
    accepted = (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], delay_seconds=600)
    ).json()
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await tenant.request("PATCH", f"/v1/api/call/{accepted['callId']}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_moves_are_bounded_and_a_refused_one_changes_nothing(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    """Each move records `call.scheduled`: a client looping PATCH meets TOO_MANY_MOVES once
    the call holds MAX_EVENTS_WHEN_MOVED events, and that refused move writes nothing."""
    accepted = (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], delay_seconds=600)
    ).json()
    path = f"/v1/api/call/{accepted['callId']}"
    for delay in range(601, 601 + MAX_EVENTS_WHEN_MOVED - 1):  # the accept wrote one event
        assert (
            await tenant.request("PATCH", path, json={"delay_seconds": delay})
        ).status_code == 200
    before = redis_snapshot(redis_client, settings.redis_prefix)
    refused = await tenant.request("PATCH", path, json={"delay_seconds": 60})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "TOO_MANY_MOVES"
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    assert (await call_status(tenant, accepted["callId"]))["status"] == "scheduled"


async def test_worker_killed_while_claiming_enqueues_each_call_once(
    tenant: Tenant, agent: dict[str, Any], lk: Any, settings: Settings, redis_client: redis.Redis
) -> None:
    """Calls fall due while no worker runs; a worker starts claiming them and is SIGKILLed,
    another takes over. Every call leaves `scheduled` and `queued` (none lost), each with
    one `call.queued` and at most one dial (none enqueued twice). What a dispatch killed
    half-way does next is the dispatcher's (tests/test_dispatch.py)."""
    # Faster redelivery of the killed worker's messages than production; same mechanism.
    fast = settings.model_copy(update={"heartbeat_timeout_ms": 2_000, "worker_timeout_ms": 500})
    count = 40
    body = {"to": "+14155552671", "call_agent_id": agent["id"], "delay_seconds": 2}
    calls = [(await tenant.place_call(**body)).json() for _ in range(count)]
    assert len(_due_members(redis_client, settings)) == count

    def claimed_some() -> bool:
        return len(_due_members(redis_client, settings)) < count

    first = WorkerProcess(fast).start()
    try:
        await async_wait_until(claimed_some, timeout=20, what="the first claims")
    finally:
        first.kill()
    second = WorkerProcess(fast).start()
    try:
        for accepted in calls:
            await wait_status(
                tenant, accepted["callId"], set(CALL_STATUSES) - {"scheduled", "queued"}, timeout=60
            )
    finally:
        second.stop()
    assert _due_members(redis_client, settings) == set()
    for accepted in calls:
        events = await _events(tenant, accepted["callId"])
        assert events.count("call.queued") == 1, events
        assert events.count("call.dispatching") == 1, events
        assert len(dial_times(lk, accepted["roomName"])) <= 1


async def test_a_scheduled_accept_replayed_with_its_idempotency_key_stores_one_call(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    body = {"to": "+14155552671", "call_agent_id": agent["id"], "delay_seconds": 600}
    headers = {"Idempotency-Key": "later-1"}
    first = (await tenant.place_call(**body, headers=headers)).json()
    before = redis_snapshot(redis_client, settings.redis_prefix)
    again = (await tenant.place_call(**body, headers=headers)).json()
    assert again == first
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    assert _due_members(redis_client, settings) == {first["callId"].encode()}
    other = await tenant.place_call(**(body | {"delay_seconds": 60}), headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_CONFLICT"
