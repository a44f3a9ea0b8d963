"""Redis drops every client connection while calls are mid-dispatch (a failover, a proxy
restart): the worker reconnects, every call still ends dialed exactly once or in a terminal
state (none stuck, none dialed twice), and every event of every call reaches its callback
in order."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from tests.callback_receiver import Receiver
from tests.conftest import Tenant, create_tenant
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

            await lk.wait_for_async("RoomService", "CreateRoom", timeout=20)
            dropped = 0
            for _ in range(3):
                dropped += admin.client_kill_filter(_type="normal", skipme=True)
                await asyncio.sleep(0.5)
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
