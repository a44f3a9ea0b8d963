"""`redeliver` cannot flood (issue 10, item 6): one pending redelivery per event, a
per-workspace rate limit, and every redelivery holds one of the workspace's in-flight
slots like any delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from aiohttp import web

from api.settings import Settings
from api.store.keys import Keys
from api.store.messages import RELAY_QUEUE, QueueKeys
from tests.callback_receiver import Receiver
from tests.conftest import Tenant
from tests.support import async_wait_until, report_agent

pytestmark = pytest.mark.dial_immediately


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"redeliveries_per_minute": 5, "callback_max_in_flight_per_workspace": 1}
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def _call_with_events(
    tenant: Tenant, settings: Settings, callback_url: str, extra_events: int
) -> tuple[str, list[str]]:
    await tenant.register_number()
    agent = await tenant.create_agent()
    response = await tenant.place_call(
        to="+14155550123", call_agent_id=agent["id"], callback_url=callback_url
    )
    assert response.status_code == 200, response.text
    call_id = response.json()["callId"]
    for _ in range(extra_events):
        await report_agent(tenant.http, settings, call_id, "agent.started")
    events = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()["events"]
    return call_id, [event["id"] for event in events]


def _redeliver(tenant: Tenant, call_id: str, event_id: str) -> Any:
    return tenant.request("POST", f"/v1/api/call/{call_id}/events/{event_id}/redeliver")


async def test_one_pending_per_event_and_a_rate_per_workspace(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis, receiver: Receiver
) -> None:
    # No worker: what the API queued stays in the relay queue, countable.
    call_id, event_ids = await _call_with_events(tenant, settings, f"{receiver.url}/cb", 7)
    queue = QueueKeys.of(settings.broker_namespace, RELAY_QUEUE)
    queued_before = redis_client.llen(queue.ids)

    first = await _redeliver(tenant, call_id, event_ids[0])
    assert first.status_code == 202, first.text
    again = await _redeliver(tenant, call_id, event_ids[0])
    assert again.status_code == 409 and again.json()["code"] == "REDELIVERY_PENDING"

    answers = [await _redeliver(tenant, call_id, event_id) for event_id in event_ids[1:]]
    assert [a.status_code for a in answers] == [202, 202, 202, 202, 429, 429, 429]
    limited = answers[-1]
    assert limited.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert redis_client.llen(queue.ids) - queued_before == 5


async def test_redeliveries_take_the_workspace_in_flight_cap(
    tenant: Tenant,
    settings: Settings,
    receiver: Receiver,
    redis_client: redis.Redis,
    request: pytest.FixtureRequest,
) -> None:
    active = 0
    most = 0

    async def slow(_: web.Request) -> web.StreamResponse:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.3)
        active -= 1
        return web.json_response({"ok": True})

    receiver.behaviours["/slow"] = slow
    call_id, event_ids = await _call_with_events(tenant, settings, f"{receiver.url}/slow", 4)
    for event_id in event_ids:
        assert (await _redeliver(tenant, call_id, event_id)).status_code == 202
    request.getfixturevalue("worker")

    async def redelivered() -> bool:
        listed = await tenant.request("GET", f"/v1/api/call/{call_id}/events")
        states = {
            e["id"]: (e["delivery"]["redelivery"] or {}).get("state")
            for e in listed.json()["events"]
        }
        return all(states[event_id] == "delivered" for event_id in event_ids)

    # The call's own drain and every redelivery went through the workspace's one slot.
    await async_wait_until(redelivered, timeout=30, what="redeliveries")
    assert len(receiver.delivered("/slow")) >= 2 * len(event_ids)
    assert most == 1
    # Done: no redelivery is pending any more (each event may be asked for again).
    keys = Keys(settings.redis_prefix)
    pending = [keys.relay_redelivery(call_id, seq) for seq in range(1, len(event_ids) + 1)]
    assert redis_client.exists(*pending) == 0
