"""The live event stream (`GET /v1/api/events/stream`) against a live API on loopback, real
Redis: every event of the workspace's calls in the order recorded, each as `GET .../events`
shows it, resumable from its id, nothing of another workspace, and a place among the
workspace's streams that the client's leaving gives back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
from redis.exceptions import ResponseError

from api.services import event_stream
from api.settings import Settings
from api.store.keys import Keys
from tests.conftest import Tenant, create_tenant
from tests.support import async_wait_until, report_agent

STREAM = "/v1/api/events/stream"
CALLEE = "+15105550123"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"event_streams_per_workspace": 2, "event_streams_max": 3})


class Sse:
    """An open event stream: its items as (id, data) in arrival order; comments apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next_item(self) -> tuple[str | None, dict[str, Any]]:
        entry_id: str | None = None
        async for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("id: "):
                entry_id = line[4:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and entry_id is not None:
                return entry_id, data
        raise EOFError("the stream ended")

    async def items(self, count: int) -> list[tuple[str | None, dict[str, Any]]]:
        return [await self.next_item() for _ in range(count)]

    async def rest(self) -> list[tuple[str | None, dict[str, Any]]]:
        found = []
        while True:
            try:
                found.append(await self.next_item())
            except EOFError:
                return found


@asynccontextmanager
async def open_stream(
    tenant: Tenant, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Sse]:
    async with tenant.http.stream(
        "GET", STREAM, params=params, headers=tenant.headers | (headers or {})
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Sse(response)


async def _shown_events(tenant: Tenant, call_id: str) -> list[dict[str, Any]]:
    """The call's events as GET shows them, with the stream's `callId` and no delivery."""
    listed = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()["events"]
    return [
        {k: v for k, v in event.items() if k != "delivery"} | {"callId": call_id}
        for event in listed
    ]


async def _two_calls(tenant: Tenant) -> tuple[str, str]:
    agent = await tenant.create_agent()
    await tenant.register_number()
    ids = []
    for _ in range(2):
        placed = await tenant.place_call(to=CALLEE, call_agent_id=agent["id"])
        assert placed.status_code == 200, placed.text
        ids.append(placed.json()["callId"])
    return ids[0], ids[1]


async def test_events_of_the_workspace_arrive_in_order_as_get_shows_them(
    tenant: Tenant, settings: Settings, lk: Any
) -> None:
    async with open_stream(tenant) as stream:
        first, second = await _two_calls(tenant)
        await report_agent(tenant.http, settings, first)
        canceled = await tenant.request("POST", f"/v1/api/call/{second}/cancel")
        assert canceled.status_code == 200, canceled.text
        items = await stream.items(4)
    assert [(data["callId"], data["type"]) for _, data in items] == [
        (first, "call.queued"),
        (second, "call.queued"),
        (first, "agent.ready"),
        (second, "call.canceled"),
    ]
    ids = [entry_id for entry_id, _ in items]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, str(i).split("-")))), ids
    assert len(set(ids)) == 4
    shown = await _shown_events(tenant, first) + await _shown_events(tenant, second)
    assert sorted((d for _, d in items), key=lambda d: d["id"]) == sorted(
        shown, key=lambda d: d["id"]
    )


async def test_last_event_id_and_after_resume_where_the_client_stopped(
    tenant: Tenant, settings: Settings, lk: Any
) -> None:
    async with open_stream(tenant) as stream:
        first, _ = await _two_calls(tenant)
        await report_agent(tenant.http, settings, first)
        items = await stream.items(3)
    resumed_from = str(items[0][0])
    bounded = {"max_seconds": 0}
    async with open_stream(tenant, bounded, {"Last-Event-ID": resumed_from}) as stream:
        assert await stream.rest() == items[1:]
    async with open_stream(tenant, bounded | {"after": items[1][0]}) as stream:
        assert await stream.rest() == items[2:]
    # The header wins over the query (a browser reconnects with its original URL).
    after = bounded | {"after": "0"}
    async with open_stream(tenant, after, {"Last-Event-ID": str(items[1][0])}) as stream:
        assert await stream.rest() == items[2:]
    async with open_stream(tenant, after) as stream:
        assert await stream.rest() == items
    refused = await tenant.request("GET", STREAM, params={"after": "yesterday"})
    assert refused.status_code == 422 and refused.json()["code"] == "VALIDATION_ERROR"


async def test_a_call_id_gives_that_call_s_events_so_far_then_live(
    tenant: Tenant, settings: Settings, lk: Any
) -> None:
    first, second = await _two_calls(tenant)
    async with open_stream(tenant, {"call_id": first}) as stream:
        ((history_id, queued),) = await stream.items(1)
        assert queued["type"] == "call.queued" and queued["callId"] == first
        assert history_id == "history-1"
        await tenant.request("POST", f"/v1/api/call/{second}/cancel")
        await tenant.request("POST", f"/v1/api/call/{first}/cancel")
        ((live_id, canceled),) = await stream.items(1)
    assert canceled["type"] == "call.canceled" and canceled["callId"] == first
    assert [queued, canceled] == await _shown_events(tenant, first)
    # Resuming after the history gives the rest, as more of the call's history; after the
    # live event, nothing.
    async with open_stream(
        tenant, {"call_id": first, "after": history_id, "max_seconds": 0}
    ) as stream:
        assert await stream.rest() == [("history-2", canceled)]
    async with open_stream(tenant, {"call_id": first, "after": live_id, "max_seconds": 0}) as s:
        assert await s.rest() == []


async def test_another_workspace_sees_nothing_of_this_one(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, lk: Any
) -> None:
    other = await create_tenant(client, "other")
    async with open_stream(other, {"max_seconds": 2}) as theirs:
        async with open_stream(tenant) as ours:
            first, _ = await _two_calls(tenant)
            await ours.items(2)
        assert await theirs.rest() == []
    async with open_stream(other, {"after": "0", "max_seconds": 0}) as theirs:
        assert await theirs.rest() == []
    foreign = await other.request("GET", STREAM, params={"call_id": first})
    assert foreign.status_code == 404 and foreign.json()["code"] == "NOT_FOUND"


async def test_streams_are_capped_per_workspace_and_a_client_leaving_frees_its_place(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    leases = Keys(settings.redis_prefix).event_streams(tenant.id)
    async with open_stream(tenant) as kept:
        async with open_stream(tenant):
            refused = await tenant.request("GET", STREAM)
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "TOO_MANY_STREAMS"
            # another workspace has places of its own
            other = await create_tenant(client, "other")
            async with open_stream(other, {"max_seconds": 0}) as theirs:
                assert await theirs.rest() == []
        # The client left: the server sees the disconnect and gives the place back.
        await async_wait_until(
            lambda: redis_client.zcard(leases) == 1, what="the stream's lease to go"
        )
        async with open_stream(tenant, {"max_seconds": 0}) as again:
            assert await again.rest() == []
        assert await anext(kept.lines) == ": stream open"  # the first one still streams
    await async_wait_until(lambda: redis_client.zcard(leases) == 0, what="every lease to go")


async def test_a_quiet_stream_sends_heartbeats_and_max_seconds_ends_it(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API runs in this process (tests/support.py ApiServer): its interval can be cut.
    monkeypatch.setattr(event_stream, "HEARTBEAT_SECONDS", 0.2)
    async with open_stream(tenant, {"max_seconds": 1}) as stream:
        assert await stream.rest() == []
    assert stream.comments[0] == ": stream open"
    assert ": heartbeat" in stream.comments[1:]


async def test_a_client_cut_off_in_a_call_s_history_resumes_without_a_gap(
    tenant: Tenant, settings: Settings, lk: Any
) -> None:
    first, _ = await _two_calls(tenant)
    await report_agent(tenant.http, settings, first)
    await tenant.request("POST", f"/v1/api/call/{first}/cancel")
    whole = {"call_id": first, "max_seconds": 0}
    async with open_stream(tenant, whole) as stream:
        items = await stream.rest()
    assert [data["type"] for _, data in items] == ["call.queued", "agent.ready", "call.canceled"]
    assert [entry_id for entry_id, _ in items] == ["history-1", "history-2", "history-3"]
    # Cut off after the first: the rest, the terminal event included.
    async with open_stream(tenant, whole, {"Last-Event-ID": "history-1"}) as stream:
        assert await stream.rest() == items[1:]
    async with open_stream(tenant, whole | {"after": "history-3"}) as stream:
        assert await stream.rest() == []
    refused = await tenant.request("GET", STREAM, params={"after": "history-1"})
    assert refused.status_code == 422 and refused.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "after", ["18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-1"]
)
async def test_an_entry_id_beyond_redis_s_range_is_refused_before_the_stream(
    tenant: Tenant, after: str
) -> None:
    refused = await tenant.request("GET", STREAM, params={"after": after})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "VALIDATION_ERROR"
    headers = {"Last-Event-ID": after}
    refused = await tenant.request("GET", STREAM, params={"max_seconds": 0}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "VALIDATION_ERROR"
    async with open_stream(tenant, {"after": "18446744073709551615-0", "max_seconds": 0}) as s:
        assert await s.rest() == []


async def test_a_first_read_redis_refuses_is_a_json_error_and_frees_the_place(
    tenant: Tenant,
    settings: Settings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused_read(*_: Any) -> Any:
        raise ResponseError("Invalid stream ID specified as stream command argument")

    monkeypatch.setattr(event_stream, "read_feed", refused_read)
    response = await tenant.request("GET", STREAM)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert redis_client.zcard(Keys(settings.redis_prefix).event_streams(tenant.id)) == 0


async def test_streams_are_capped_across_the_deployment(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    everyone = Keys(settings.redis_prefix).all_event_streams()
    other = await create_tenant(client, "other")
    third = await create_tenant(client, "third")
    async with open_stream(tenant), open_stream(tenant), open_stream(other):
        refused = await third.request("GET", STREAM)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "EVENT_STREAMS_FULL"
        assert refused.json()["details"] == {"limit": 3}
        assert redis_client.zcard(everyone) == 3  # the refused one left nothing
    await async_wait_until(lambda: redis_client.zcard(everyone) == 0, what="every lease to go")
    async with open_stream(third, {"max_seconds": 0}) as theirs:
        assert await theirs.rest() == []
