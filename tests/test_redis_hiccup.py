"""Redis failures while calls are in flight.

1. Redis drops every client connection while calls are mid-dispatch (a failover, a proxy
   restart): the worker reconnects, every call still ends dialed exactly once or in a
   terminal state (none stuck, none dialed twice), and every event of every call reaches its
   callback in order. The connections killed there are mostly idle pooled ones, which
   redis-py replaces without a single command failing.
2. So the second test makes Redis fail *while* the relay's scripts run: a proxy in front of
   Redis lets a script run and loses its reply (the client's link drops). Outdial's own
   recovery must then act (the drain parks the call after the error, the scheduler brings
   it back), and the events still arrive in order, each exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import redis

from api.security import event_token
from api.settings import Settings
from api.store.keys import Keys
from api.store.scripts import SCRIPTS
from tests.callback_receiver import Receiver
from tests.conftest import Tenant, create_tenant
from tests.redis_proxy import RedisProxy, script_sha
from tests.support import (
    ApiServer,
    SpareRedis,
    WorkerProcess,
    async_wait_until,
    free_port,
    has_sip_leg,
)

# The call's order is not this module's subject: calls dial right after CreateRoom.
pytestmark = pytest.mark.dial_immediately

CALLS = 6
TERMINAL = {"failed", "canceled", "completed", "no_answer", "busy"}


async def _settled(tenant: Tenant, lk: Any, call_id: str) -> dict[str, Any] | None:
    """The call's view once it is terminal, or dialing with its SIP leg in the room."""
    response = await tenant.request("GET", f"/v1/api/call/{call_id}")
    assert response.status_code == 200, response.text  # the API's connections recovered
    view = response.json()
    if view["status"] in TERMINAL:
        return view
    if view["status"] == "dialing" and has_sip_leg(lk, view["roomName"], call_id):
        return view
    return None


async def _events(tenant: Tenant, call_id: str) -> list[dict[str, Any]] | None:
    """The call's events once every one of them is delivered."""
    response = await tenant.request("GET", f"/v1/api/call/{call_id}/events")
    events = response.json()["events"]
    return events if all(e["delivery"]["state"] == "delivered" for e in events) else None


async def test_dropped_redis_connections_mid_dispatch_lose_nothing_and_dial_once(
    spare_redis: SpareRedis, settings: Settings, lk: Any
) -> None:
    # A short heartbeat timeout makes a message whose ack was lost come back quickly.
    on_spare = settings.model_copy(
        update={
            "redis_url": spare_redis.url,
            "heartbeat_timeout_ms": 2_000,
            "worker_timeout_ms": 500,
            "callback_retry_schedule": [0.2, 0.5, 1.0],
        }
    )
    receiver = await Receiver().start()
    server = ApiServer(on_spare, free_port()).start()
    worker = WorkerProcess(on_spare).start()
    admin = redis.Redis.from_url(spare_redis.url)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            tenant = await create_tenant(http, "hiccup")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            # Every CreateRoom stalls a little, so calls are mid-dispatch when the links drop.
            lk.inject("RoomService", "CreateRoom", delay_before=0.4, times=None)
            call_ids = []
            for index in range(CALLS):
                placed = await tenant.place_call(
                    to="+14155552671",
                    call_agent_id=agent["id"],
                    callback_url=f"{receiver.url}/{index}",
                )
                assert placed.status_code == 200, placed.text
                call_ids.append(placed.json()["callId"])

            dropped = 0
            for arrived in (1, 2, 3):
                # Each time one more call is mid-dispatch (its CreateRoom stalls at LiveKit).
                await lk.wait_for_async("RoomService", "CreateRoom", count=arrived, timeout=20)
                dropped += admin.client_kill_filter(_type="normal", skipme=True)
            assert dropped >= 3  # the worker's and the API's connections really went

            views = {}
            for call_id in call_ids:
                views[call_id] = await async_wait_until(
                    lambda call_id=call_id: _settled(tenant, lk, call_id),
                    timeout=60,
                    what=f"call {call_id} to settle",
                )
            listed = {}
            for call_id in call_ids:
                listed[call_id] = await async_wait_until(
                    lambda call_id=call_id: _events(tenant, call_id),
                    timeout=60,
                    what=f"call {call_id}'s events delivered",
                )
    finally:
        worker.stop()
        server.stop()
        admin.close()
        await receiver.stop()

    dials = Counter(d.request.room_name for d in lk.requests("SIP", "CreateSIPParticipant"))
    assert all(count == 1 for count in dials.values()), dials
    for view in views.values():
        if view["status"] == "dialing":
            assert dials[view["roomName"]] == 1, view
        else:
            # Only a cut between the dialing mark and the dial may end a call undialed.
            assert (view["status"], view["errorCode"]) == ("failed", "DIAL_INTERRUPTED"), view
            assert dials[view["roomName"]] == 0, view
    assert sum(view["status"] == "dialing" for view in views.values()) >= CALLS // 2, views

    for index, call_id in enumerate(call_ids):
        # At least once: a delivery cut off before it was recorded is sent again, so only
        # the first arrival of each event id counts for the order.
        first_arrivals = list(dict.fromkeys(p["id"] for p in receiver.delivered(f"/{index}")))
        assert first_arrivals == [event["id"] for event in listed[call_id]], call_id
        assert [e["type"] for e in listed[call_id]][:2] == ["call.queued", "call.dispatching"]


TRANSCRIPTS = 5
# The relay scripts whose replies get lost, and the path of the call that loses one.
LOST_STEPS = {
    # an attempt recorded (the cursor moved), the drain not told
    "/record": SCRIPTS["relay_record"],
    # the lease taken and the first event read, the drain not told
    "/begin": SCRIPTS["relay_begin"],
}


async def _post_transcripts(
    http: httpx.AsyncClient, settings: Settings, call_id: str, count: int
) -> None:
    token = event_token(call_id, settings.event_signing_key)
    for turn in range(count):
        response = await http.post(
            f"/v1/internal/calls/{call_id}/events",
            json={"type": "call.transcript", "data": {"turns": [{"role": "user", "text": turn}]}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text


async def test_replies_lost_while_relay_scripts_run_are_recovered_in_order_exactly_once(
    spare_redis: SpareRedis, redis_proxy: RedisProxy, settings: Settings, lk: Any
) -> None:
    through_proxy = settings.model_copy(
        update={"redis_url": redis_proxy.url, "callback_retry_schedule": [0.2, 0.5, 1.0]}
    )
    admin = redis.Redis.from_url(spare_redis.url)  # straight to Redis, past the proxy
    # Loaded up front, so each matched EVALSHA runs the script (no NOSCRIPT round).
    for script in LOST_STEPS.values():
        admin.script_load(script)
    keys = Keys(through_proxy.redis_prefix)
    receiver = await Receiver().start()
    server = ApiServer(through_proxy, free_port()).start()
    worker = WorkerProcess(through_proxy).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            tenant = await create_tenant(http, "lost-replies")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            calls = {}
            for path in LOST_STEPS:
                placed = await tenant.place_call(
                    to="+14155552671",
                    call_agent_id=agent["id"],
                    callback_url=f"{receiver.url}{path}",
                )
                assert placed.status_code == 200, placed.text
                calls[path] = placed.json()["callId"]

            async def idle(call_id: str) -> bool:
                """Dialed, every event so far delivered and no drain running."""
                listed = await _events(tenant, call_id)
                return (
                    listed is not None
                    and [e["type"] for e in listed][-1] == "call.dialing"
                    and not admin.exists(keys.relay_active(call_id))
                )

            rules = {}
            listed = {}
            # One call at a time: the worker's scripts share one connection, and a lost reply
            # is a lost connection, which fails whatever else is in flight on it (another
            # call's delivery record, say). Real connection losses do that to every client;
            # here each call's own recovery is the subject.
            for path, script in LOST_STEPS.items():
                call_id = calls[path]
                await async_wait_until(
                    lambda call_id=call_id: idle(call_id), timeout=30, what=f"{call_id} idle"
                )
                # The call's next drain loses the reply of this script, once.
                rules[path] = redis_proxy.lose_reply(
                    "EVALSHA", first_arg=script_sha(script), contains=call_id
                )
                await _post_transcripts(http, through_proxy, call_id, TRANSCRIPTS)
                listed[path] = await async_wait_until(
                    lambda call_id=call_id: _events(tenant, call_id),
                    timeout=30,
                    what=f"every event of {call_id} delivered after the lost reply",
                )
    finally:
        worker.stop()
        server.stop()
        admin.close()
        await receiver.stop()

    for path, call_id in calls.items():
        # The failure happened inside Outdial's script call (not in an idle pooled link that
        # redis-py replaces), and Outdial's recovery ran: the drain failed and the call was
        # drained again later.
        assert len(redis_proxy.lost(rules[path])) == 1, path
        assert f"relay drain of call {call_id} failed" in worker.log(), (path, worker.log())
        events = listed[path]
        assert [e["type"] for e in events] == [
            "call.queued",
            "call.dispatching",
            "call.dialing",
            *["call.transcript"] * TRANSCRIPTS,
        ], path
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        # In order and exactly once: no attempt repeated, none failed, none skipped.
        attempts = receiver.attempts(path)
        assert [a.status for a in attempts] == [200] * len(events), path
        assert [a.payload["id"] for a in attempts] == [e["id"] for e in events], path
        assert [e["delivery"]["attempts"] for e in events] == [1] * len(events), path
