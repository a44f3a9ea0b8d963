"""Call truth end to end (real API, real Redis, real Dramatiq worker, the LiveKit test
server): nobody is rung without an agent, nobody is left on a line without one, and no call
stays non-terminal past its deadline when LiveKit's webhooks never arrive.

None of these tests sends a webhook: the worker's reconciler must find the truth in
LiveKit's state (ListParticipants) by itself. Budgets are shortened through the settings,
the mechanism is the production one.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis

from api.security import event_token
from api.settings import Settings
from tests.calls import call_status, report_ready, wait_dialed, wait_status
from tests.conftest import Tenant
from tests.support import WorkerProcess, async_wait_until

SHORT = {
    "agent_ready_timeout_seconds": 2,
    "agent_answer_grace_seconds": 2,
    "deadline_margin_seconds": 2,
    "reconcile_interval_seconds": 0.2,
    "reconcile_lease_seconds": 3,
}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    update: dict[str, Any] = dict(SHORT)
    if request.node.get_closest_marker("agent_joined_counts"):
        update["dial_mode"] = "agent_joined"
    return settings.model_copy(update=update)


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    created = await tenant.create_agent(ring_timeout_seconds=5, max_duration_seconds=10)
    await tenant.register_number("+15105550100")
    return created


async def _place(tenant: Tenant, agent: dict[str, Any]) -> dict[str, Any]:
    response = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    assert response.status_code == 200, response.text
    return response.json()


async def _readyz(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/readyz")).json()


async def test_no_agent_ready_fails_the_call_and_rings_nobody(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    accepted = await _place(tenant, agent)
    view = await wait_status(tenant, accepted["callId"], {"failed"})
    assert view["errorCode"] == "AGENT_UNAVAILABLE"
    assert view["endReason"] == "agent_unavailable"
    assert lk.count("SIP", "CreateSIPParticipant") == 0
    await _room_dropped(lk, accepted["roomName"])  # the room (and its agent job) is gone
    transitions = list(view["transitions"])
    assert transitions == ["queued", "dispatching", "waiting_for_agent", "failed"]


@pytest.mark.agent_joined_counts
async def test_an_agent_in_the_room_counts_as_ready_at_the_deadline(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    """A custom agent that never posts agent.ready, with webhooks missing: LiveKit shows
    it in the room, so the call is dialed (once) instead of failed."""
    accepted = await _place(tenant, agent)
    await wait_status(tenant, accepted["callId"], {"waiting_for_agent"})
    lk.add_agent_participant(accepted["roomName"], "agent-custom")
    await wait_dialed(tenant, accepted["callId"])
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_an_unanswered_call_without_webhooks_ends_within_its_ring_timeout_bound(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    accepted = await _place(tenant, agent)
    call_id = accepted["callId"]
    await report_ready(tenant, settings, call_id)
    dialed = await wait_dialed(tenant, call_id)
    # The leg rings forever at the test server and LiveKit sends nothing.
    lk.set_participant(accepted["roomName"], f"sip-{call_id}", call_status="ringing")
    view = await wait_status(tenant, call_id, {"no_answer"}, timeout=30)
    assert view["endReason"] == "no_answer"
    dialed_at = _epoch(dialed["transitions"]["dialing"])
    ended_at = _epoch(view["endedAt"])
    # Never before the ring timeout (+ margin), and soon after it.
    assert ended_at - dialed_at >= 5 + SHORT["deadline_margin_seconds"] - 0.01
    assert ended_at - dialed_at <= 5 + 30
    await _room_dropped(lk, accepted["roomName"])
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_an_answer_nobody_reports_is_found_and_the_call_ends_at_max_duration(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    worker: WorkerProcess,
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    accepted = await _place(tenant, agent)
    call_id, room = accepted["callId"], accepted["roomName"]
    await report_ready(tenant, settings, call_id)
    await wait_dialed(tenant, call_id)
    lk.add_agent_participant(room, "agent-1")
    lk.set_participant(room, f"sip-{call_id}", call_status="active")
    answered = await wait_status(tenant, call_id, {"in_progress"})
    # LiveKit sends no webhook for an answer: finding one says nothing about webhooks.
    assert (await _readyz(client))["checks"]["livekitWebhooks"] == "none received yet"
    view = await wait_status(tenant, call_id, {"completed"}, timeout=40)
    assert view["endReason"] == "max_duration"
    talked = _epoch(view["endedAt"]) - _epoch(answered["transitions"]["in_progress"])
    assert 10 <= talked <= 10 + 30
    await _room_dropped(lk, room)


async def test_a_leg_that_left_without_a_webhook_is_settled_and_said_out_loud(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    worker: WorkerProcess,
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    """LiveKit would send participant_left for this: its absence means webhooks are not
    reaching the API, which the reconciler says in /readyz (and the log and a metric)."""
    accepted = await _place(tenant, agent)
    call_id = accepted["callId"]
    await report_ready(tenant, settings, call_id)
    await wait_dialed(tenant, call_id)
    lk.set_participant(accepted["roomName"], f"sip-{call_id}", call_status="ringing", remove=True)
    view = await wait_status(tenant, call_id, {"no_answer"}, timeout=30)
    events = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()["events"]
    assert events[-1]["data"]["source"] == "reconciler"
    assert view["endReason"] == "no_answer"
    assert (await _readyz(client))["checks"]["livekitWebhooks"].startswith("missing")


@pytest.mark.dial_immediately
async def test_answered_without_an_agent_drops_the_room_within_the_grace(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    """Dialing at once (the opt-in mode) and no agent ever joins: the callee who answers
    hears silence for at most about the grace, then the room goes."""
    accepted = await _place(tenant, agent)
    call_id, room = accepted["callId"], accepted["roomName"]
    await wait_dialed(tenant, call_id)
    answered_at = time.time()
    lk.set_participant(room, f"sip-{call_id}", call_status="active")
    view = await wait_status(tenant, call_id, {"failed"}, timeout=20)
    assert view["endReason"] == "agent_unavailable"
    await _room_dropped(lk, room)
    # found within one grace, then one grace for the agent: about two graces of silence
    assert time.time() - answered_at <= 2 * SHORT["agent_answer_grace_seconds"] + 5


async def test_worker_killed_while_reconciling_settles_the_call_once(
    tenant: Tenant, agent: dict[str, Any], lk: Any, settings: Settings, api_server: Any
) -> None:
    first = WorkerProcess(settings).start()
    accepted = await _place(tenant, agent)
    call_id = accepted["callId"]
    await wait_status(tenant, call_id, {"waiting_for_agent"})
    # The reconciler's look at the room hangs; the worker dies in it.
    lk.inject("RoomService", "ListParticipants", delay_before=30)
    await async_wait_until(lambda: lk.count("RoomService", "ListParticipants") >= 1, timeout=20)
    first.kill()
    lk.clear_faults()
    second = WorkerProcess(settings).start()
    try:
        # The claimed deadline comes back one lease later and the second worker settles it.
        view = await wait_status(tenant, call_id, {"failed"}, timeout=30)
    finally:
        second.stop()
    assert view["errorCode"] == "AGENT_UNAVAILABLE"
    assert lk.count("SIP", "CreateSIPParticipant") == 0
    events = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()["events"]
    assert [e["type"] for e in events].count("call.failed") == 1


async def test_a_live_deadline_is_kept_for_every_non_terminal_call(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    """Waiting, dialing: each has one entry in the deadlines set; terminal: none."""
    plain = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = f"{settings.redis_prefix}:deadlines"
    try:
        accepted = await _place(tenant, agent)
        call_id = accepted["callId"]
        await wait_status(tenant, call_id, {"waiting_for_agent"})
        assert plain.zscore(key, call_id) is not None
        await report_ready(tenant, settings, call_id)
        await wait_dialed(tenant, call_id)
        assert plain.zscore(key, call_id) is not None
        await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")
        assert (await call_status(tenant, call_id))["status"] == "canceled"
        assert plain.zscore(key, call_id) is None
    finally:
        plain.close()


async def _room_dropped(lk: Any, room_name: str) -> None:
    """The status is applied before the room is dropped: wait for the DeleteRoom."""
    await async_wait_until(lambda: lk.room(room_name) is None, what=f"room {room_name} dropped")
    assert lk.room(room_name, include_closed=True) is not None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.agent_joined_counts
async def test_an_agent_participant_joined_webhook_counts_as_ready(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, api_server: Any
) -> None:
    lk.webhook_url = api_server.url + "/v1/livekit/webhook"
    accepted = await _place(tenant, agent)
    await wait_status(tenant, accepted["callId"], {"waiting_for_agent"})
    lk.add_agent_participant(accepted["roomName"], "agent-custom")
    status, _ = await lk.send_webhook_async(
        "participant_joined", accepted["roomName"], "agent-custom"
    )
    assert status == 200
    await wait_dialed(tenant, accepted["callId"])
    events = (await tenant.request("GET", f"/v1/api/call/{accepted['callId']}/events")).json()
    ready = [e for e in events["events"] if e["type"] == "agent.ready"]
    assert [e["data"]["source"] for e in ready] == ["livekit"]
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_canceled_while_waiting_for_the_agent_never_rings(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    accepted = await _place(tenant, agent)
    call_id = accepted["callId"]
    await wait_status(tenant, call_id, {"waiting_for_agent"})
    canceled = await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")
    assert canceled.json()["status"] == "canceled"
    assert lk.room(accepted["roomName"]) is None
    # The agent reports ready late: refused (the call ended), and nothing dials it.
    late = await tenant.http.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"type": "agent.ready", "data": {"job_id": "AJ_test"}},
        headers={"Authorization": f"Bearer {event_token(call_id, settings.event_signing_key)}"},
    )
    assert late.status_code == 409 and late.json()["code"] == "CALL_ENDED"
    assert not (await call_status(tenant, call_id)).get("sipCallId")
    assert lk.count("SIP", "CreateSIPParticipant") == 0
