"""Agent events are bounded (issue 10, item 5): the token is checked before the body is
read, the body and its timestamp are bounded, a call takes a bounded number of events and
bytes from its agent, and after the end only a late transcript within a grace is taken."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis

from api.security import event_token
from api.settings import Settings
from api.store.keys import Keys
from tests.conftest import Tenant

pytestmark = pytest.mark.dial_immediately


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "agent_events_per_call": 50,
            "agent_event_bytes_per_call": 100_000,
            "agent_event_max_bytes": 4096,
            "agent_late_transcript_grace_seconds": 2,
        }
    )


async def _call(tenant: Tenant) -> str:
    await tenant.register_number()
    agent = await tenant.create_agent()
    response = await tenant.place_call(to="+14155550123", call_agent_id=agent["id"])
    assert response.status_code == 200, response.text
    return response.json()["callId"]


async def _post(
    http: httpx.AsyncClient, settings: Settings, call_id: str, body: Any, token: str | None = None
) -> httpx.Response:
    token = token or event_token(call_id, settings.event_signing_key)
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return await http.post(
        f"/v1/internal/calls/{call_id}/events",
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _stored(redis_client: redis.Redis, settings: Settings, call_id: str) -> int:
    return redis_client.llen(Keys(settings.redis_prefix).events(call_id))


async def test_token_is_checked_before_the_body_is_parsed(
    tenant: Tenant, settings: Settings
) -> None:
    call_id = await _call(tenant)
    response = await _post(tenant.http, settings, call_id, b"{not json", token="wrong")
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"
    response = await _post(tenant.http, settings, call_id, b"{not json")
    assert response.status_code == 422 and response.json()["code"] == "VALIDATION_ERROR"


async def test_size_and_timestamp_are_bounded(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    call_id = await _call(tenant)
    before = _stored(redis_client, settings, call_id)
    big = {"type": "agent.started", "data": {"blob": "x" * 5000}}
    response = await _post(tenant.http, settings, call_id, big)
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    for stamp in (time.time() - 3 * 86_400, time.time() + 3 * 86_400, 1e300):
        response = await _post(
            tenant.http, settings, call_id, {"type": "agent.started", "timestamp": stamp}
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert _stored(redis_client, settings, call_id) == before


async def test_events_per_call_and_bytes_per_call_are_capped(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    call_id = await _call(tenant)
    codes: list[int] = []
    for n in range(60):
        response = await _post(
            tenant.http, settings, call_id, {"type": "agent.started", "data": {"n": n}}
        )
        codes.append(response.status_code)
    assert response.json()["code"] == "EVENT_QUOTA_EXCEEDED"
    assert codes.count(409) > 0 and set(codes) == {200, 409}
    assert _stored(redis_client, settings, call_id) == settings.agent_events_per_call

    # Bytes: transcripts may be larger than one event, but not past the call's budget.
    other = await _call(tenant)
    turns = [{"role": "user", "text": "y" * 30_000}]
    answers = []
    for _ in range(4):
        response = await _post(
            tenant.http, settings, other, {"type": "call.transcript", "data": {"turns": turns}}
        )
        answers.append(response.status_code)
    assert answers == [200, 200, 200, 409]
    assert response.json()["code"] == "EVENT_QUOTA_EXCEEDED"


async def test_after_the_end_only_a_late_transcript_within_the_grace(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    call_id = await _call(tenant)
    canceled = await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    late = await _post(tenant.http, settings, call_id, {"type": "agent.started"})
    assert late.status_code == 409 and late.json()["code"] == "CALL_ENDED"
    assert late.json()["details"] == {"status": "canceled"}
    transcript = {"type": "call.transcript", "data": {"turns": []}}
    assert (await _post(tenant.http, settings, call_id, transcript)).status_code == 200
    stored = _stored(redis_client, settings, call_id)
    await asyncio.sleep(settings.agent_late_transcript_grace_seconds + 0.5)
    too_late = await _post(tenant.http, settings, call_id, transcript)
    assert too_late.status_code == 409 and too_late.json()["code"] == "CALL_ENDED"
    assert _stored(redis_client, settings, call_id) == stored
    # A status event after the end is still just stale (the agent's end raced another).
    ended = await _post(tenant.http, settings, call_id, {"type": "call.ended", "data": {}})
    assert ended.status_code == 200, ended.text
    assert (ended.json()["outcome"], ended.json()["status"]) == ("stale", "canceled")
