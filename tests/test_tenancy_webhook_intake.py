"""LiveKit webhooks in (issue 10, items 11 and 12): a signed webhook outside the
`created_at` window is refused and changes nothing; the webhook route has its own body limit,
large enough for `agent_job_*` events that carry a long agent prompt, and still bounded.
Real API, real Redis, webhooks signed by the LiveKit test server's key."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import redis
from livekit.protocol.models import DisconnectReason, Room
from livekit.protocol.webhook import WebhookEvent

from api.middleware import LIVEKIT_WEBHOOK_BODY_LIMIT
from api.schemas.calls import MAX_BODY_BYTES
from api.settings import Settings
from tests.conftest import Tenant
from tests.livekit_server import webhooks as wh
from tests.support import TEST_API_KEY, TEST_API_SECRET, ApiServer, redis_snapshot


@pytest.fixture
async def queued_call(tenant: Tenant, lk: Any, api_server: ApiServer) -> dict[str, Any]:
    """A call that stays queued (no worker) with its SIP participant already in the room."""
    lk.webhook_url = api_server.url + "/v1/livekit/webhook"
    agent = await tenant.create_agent()
    await tenant.register_number()
    accepted = (await tenant.place_call(to="+14155550123", call_agent_id=agent["id"])).json()
    lk.add_sip_participant(accepted["roomName"], f"sip-{accepted['callId']}")
    return accepted


@pytest.mark.parametrize("offset_seconds", [-7 * 86_400, -301, 3_600])
async def test_a_webhook_outside_its_created_at_window_is_refused(
    offset_seconds: int,
    tenant: Tenant,
    queued_call: dict[str, Any],
    lk: Any,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    """Validly signed (the signature does not say when the event happened): a recorded
    `participant_left` replayed a week later must not end the call."""
    room, call_id = queued_call["roomName"], queued_call["callId"]
    lk.set_participant(room, f"sip-{call_id}", disconnect_reason=DisconnectReason.USER_REJECTED)
    before = redis_snapshot(redis_client, settings.redis_prefix)
    created_at = str(int(time.time()) + offset_seconds)
    status, text = await lk.send_webhook_async(
        "participant_left", room, f"sip-{call_id}", extra={"createdAt": created_at}
    )
    assert status == 401, text
    assert json.loads(text)["code"] == "UNAUTHORIZED"
    assert "created_at" in json.loads(text)["message"]
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    call = (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    assert call["status"] == "queued"


async def test_a_webhook_within_its_window_applies(
    tenant: Tenant, queued_call: dict[str, Any], lk: Any
) -> None:
    room, call_id = queued_call["roomName"], queued_call["callId"]
    lk.set_participant(room, f"sip-{call_id}", disconnect_reason=DisconnectReason.USER_REJECTED)
    created_at = str(int(time.time()) - 60)  # a minute of delay or clock skew is fine
    status, text = await lk.send_webhook_async(
        "participant_left", room, f"sip-{call_id}", extra={"createdAt": created_at}
    )
    assert status == 200, text
    assert json.loads(text)["outcome"] == "applied"


async def _post_signed(api_server: ApiServer, body: str) -> httpx.Response:
    _, token = wh.sign(body, TEST_API_KEY, TEST_API_SECRET)
    async with httpx.AsyncClient(base_url=api_server.url, timeout=15) as http:
        return await http.post(
            "/v1/livekit/webhook",
            content=body.encode(),
            headers={"Content-Type": wh.CONTENT_TYPE, "Authorization": token or ""},
        )


def _room_finished(metadata_bytes: int) -> str:
    """A signed-able `room_finished` for an unknown room, padded to a body size: the room's
    metadata stands in for the dispatch contract an `agent_job_*` event carries."""
    event = WebhookEvent(
        event="room_finished",
        id="EV_big",
        created_at=int(time.time()),
        room=Room(name="room-outdial-never-made", metadata="x" * metadata_bytes),
    )
    return wh.serialize(event)


async def test_a_webhook_over_the_api_body_limit_is_accepted(api_server: ApiServer) -> None:
    body = _room_finished(4 * MAX_BODY_BYTES)
    assert MAX_BODY_BYTES < len(body) < LIVEKIT_WEBHOOK_BODY_LIMIT
    response = await _post_signed(api_server, body)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "ignored"


async def test_a_webhook_over_its_own_limit_is_413(api_server: ApiServer) -> None:
    response = await _post_signed(api_server, _room_finished(LIVEKIT_WEBHOOK_BODY_LIMIT))
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert response.json()["details"] == {"limitBytes": LIVEKIT_WEBHOOK_BODY_LIMIT}
