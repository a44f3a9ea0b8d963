"""`POST /v1/livekit/webhook` with signed (and forged) webhooks from the LiveKit test server:
real API, real Redis, no worker needed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from livekit.protocol.models import DisconnectReason

from api.settings import Settings
from tests.conftest import Tenant
from tests.support import ApiServer, redis_snapshot


@pytest.fixture
async def queued_call(tenant: Tenant, lk: Any, api_server: ApiServer) -> dict[str, Any]:
    """A call that stays queued (no worker) with its SIP participant already in the room."""
    lk.webhook_url = api_server.url + "/v1/livekit/webhook"
    agent = await tenant.create_agent()
    await tenant.register_number()
    accepted = (await tenant.place_call(to="+14155550123", call_agent_id=agent["id"])).json()
    lk.add_sip_participant(accepted["roomName"], f"sip-{accepted['callId']}")
    return accepted


async def _events(tenant: Tenant, call_id: str) -> list[dict[str, Any]]:
    response = await tenant.request("GET", f"/v1/api/call/{call_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["events"]


def _seen_markers(redis_client: redis.Redis, settings: Settings) -> list[bytes]:
    return list(redis_client.scan_iter(match=f"{settings.redis_prefix}:lkhook:*"))


@pytest.mark.parametrize(
    "forge", ["bad_signature", "altered_body", "stale", "unknown_key", "missing_auth"]
)
async def test_forged_webhooks_are_refused_and_change_nothing(
    forge: str,
    tenant: Tenant,
    queued_call: dict[str, Any],
    lk: Any,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    room, call_id = queued_call["roomName"], queued_call["callId"]
    lk.set_participant(room, f"sip-{call_id}", disconnect_reason=DisconnectReason.USER_REJECTED)
    before = redis_snapshot(redis_client, settings.redis_prefix)
    status, text = await lk.send_webhook_async(
        "participant_left", room, f"sip-{call_id}", forge=forge
    )
    assert status == 401, text
    assert json.loads(text)["code"] == "UNAUTHORIZED"
    # Nothing under the test's prefix changed: no event, status, marker or message.
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    assert [event["type"] for event in await _events(tenant, call_id)] == ["call.queued"]
    assert _seen_markers(redis_client, settings) == []


async def test_unknown_room_is_acknowledged_and_ignored(
    tenant: Tenant, queued_call: dict[str, Any], lk: Any
) -> None:
    status, text = await lk.send_webhook_async("room_finished", "room-outdial-never-made")
    assert status == 200, text
    assert json.loads(text)["outcome"] == "ignored"
    assert len(await _events(tenant, queued_call["callId"])) == 1


async def test_a_retried_webhook_id_applies_once(
    tenant: Tenant, queued_call: dict[str, Any], lk: Any
) -> None:
    room, call_id = queued_call["roomName"], queued_call["callId"]
    identity = f"sip-{call_id}"
    lk.set_participant(room, identity, disconnect_reason=DisconnectReason.USER_UNAVAILABLE)
    answers = [
        await lk.send_webhook_async("participant_left", room, identity, event_id="EV_retried")
        for _ in range(3)
    ]
    outcomes = [json.loads(text)["outcome"] for _, text in answers]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert outcomes == ["applied", "duplicate", "duplicate"]
    events = await _events(tenant, call_id)
    assert [(e["type"], e["status"]) for e in events] == [
        ("call.queued", "queued"),
        ("call.ended", "no_answer"),
    ]
    assert events[1]["data"]["reason"] == "no_answer"
    assert events[1]["delivery"] == {"state": "no_callback", "attempts": 0}
    call = (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    assert (call["status"], call["endReason"]) == ("no_answer", "no_answer")


async def test_agent_job_ending_before_answer_fails_the_call_and_drops_the_room(
    tenant: Tenant, queued_call: dict[str, Any], lk: Any
) -> None:
    room, call_id = queued_call["roomName"], queued_call["callId"]
    job = {"id": "AJ_test", "agentName": "outdial-agent", "room": {"name": room}}
    status, text = await lk.send_webhook_async("agent_job_started", room, extra={"job": job})
    assert status == 200, text
    ended = job | {"state": {"status": "JS_FAILED", "error": "crashed"}}
    status, text = await lk.send_webhook_async("agent_job_ended", room, extra={"job": ended})
    assert status == 200, text
    events = await _events(tenant, call_id)
    assert [(e["type"], e["status"]) for e in events] == [
        ("call.queued", "queued"),
        ("agent.job_started", "queued"),
        ("agent.job_ended", "queued"),
        ("call.failed", "failed"),
    ]
    assert events[2]["data"]["error"] == "crashed"
    assert events[3]["data"]["reason"] == "agent_failed"
    assert [r.request.room for r in lk.requests("RoomService", "DeleteRoom")] == [room]
