"""A disabled workspace's queued calls are never dialed and its callbacks are not sent
(issue 10, item 8): real API, real Redis, a real Dramatiq worker, the LiveKit test server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from api.store.keys import Keys
from tests.callback_receiver import Receiver
from tests.calls import wait_status
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN, async_wait_until, report_agent


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def _set_disabled(http: httpx.AsyncClient, workspace_id: str, disabled: bool) -> None:
    response = await http.patch(
        f"/v1/admin/workspaces/{workspace_id}",
        json={"disabled": disabled},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 200, response.text


def _events(redis_client: redis.Redis, settings: Settings, call_id: str) -> list[dict[str, Any]]:
    keys = Keys(settings.redis_prefix)
    return [json.loads(raw) for raw in redis_client.lrange(keys.events(call_id), 0, -1)]


def _delivery(redis_client: redis.Redis, settings: Settings, call_id: str) -> dict[str, Any]:
    raw = redis_client.hgetall(Keys(settings.redis_prefix).delivery(call_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_queued_call_of_disabled_workspace_is_canceled_never_dialed_no_callbacks(
    tenant: Tenant,
    lk: Any,
    settings: Settings,
    redis_client: redis.Redis,
    receiver: Receiver,
    request: pytest.FixtureRequest,
) -> None:
    await tenant.register_number()
    agent = await tenant.create_agent()
    accepted = await tenant.place_call(
        to="+14155550123", call_agent_id=agent["id"], callback_url=f"{receiver.url}/cb"
    )
    assert accepted.status_code == 200, accepted.text
    call_id = accepted.json()["callId"]
    # Queued with no worker running; then the operator disables the workspace.
    await _set_disabled(tenant.http, tenant.id, True)
    request.getfixturevalue("worker")

    def canceled() -> bool:
        return any(e["type"] == "call.canceled" for e in _events(redis_client, settings, call_id))

    await async_wait_until(canceled, timeout=20, what="call canceled")
    ended = _events(redis_client, settings, call_id)[-1]
    assert ended["status"] == "canceled" and ended["data"]["reason"] == "workspace_disabled"
    assert lk.count("RoomService", "CreateRoom") == 0
    assert lk.count("SIP", "CreateSIPParticipant") == 0

    # Every event is given up with a clear error; the receiver got nothing.
    def all_given_up() -> bool:
        delivery = _delivery(redis_client, settings, call_id)
        return int(delivery.get("cursor", 0)) == len(_events(redis_client, settings, call_id))

    await async_wait_until(all_given_up, timeout=20, what="events given up")
    delivery = _delivery(redis_client, settings, call_id)
    states = [json.loads(delivery[str(seq)]) for seq in range(1, int(delivery["cursor"]) + 1)]
    assert {s["state"] for s in states} == {"failed"}
    assert all("workspace is disabled" in s["last_error"] for s in states)
    assert receiver.received == []

    # Enabled again: the call reads `canceled` with its reason.
    await _set_disabled(tenant.http, tenant.id, False)
    view = await wait_status(tenant, call_id, {"canceled"})
    assert view["endReason"] == "workspace_disabled"


async def test_call_waiting_for_agent_is_canceled_when_ready_after_disable(
    tenant: Tenant, lk: Any, settings: Settings, worker: Any, redis_client: Any
) -> None:
    await tenant.register_number()
    agent = await tenant.create_agent()
    accepted = await tenant.place_call(to="+14155550123", call_agent_id=agent["id"])
    call_id = accepted.json()["callId"]
    await wait_status(tenant, call_id, {"waiting_for_agent"})
    await _set_disabled(tenant.http, tenant.id, True)
    await report_agent(tenant.http, settings, call_id)

    # The dial step runs while the workspace is disabled (enabling it before the step has
    # run would rightly let it dial): settled first (read from the store: a disabled
    # workspace cannot read its calls), then enabled again to read the call.
    def settled() -> bool:
        kinds = {e["type"] for e in _events(redis_client, settings, call_id)}
        return bool(kinds & {"call.canceled", "call.dialing"})

    await async_wait_until(settled, timeout=20, what="the dial step settled the call")
    await _set_disabled(tenant.http, tenant.id, False)
    view = await wait_status(tenant, call_id, {"canceled", "dialing"})
    assert view["status"] == "canceled" and view["endReason"] == "workspace_disabled"
    assert lk.count("SIP", "CreateSIPParticipant") == 0
    # The room created for the agent is deleted.
    await async_wait_until(
        lambda: lk.count("RoomService", "DeleteRoom") == 1, timeout=10, what="room deleted"
    )
