"""The Redis store's atomic scripts, against real Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from api.services.call_end import count_call_end
from api.settings import Settings
from api.store.base import Store, open_store
from api.store.call_record import CallBudgets, CallDraft, CallUpdate
from api.store.calls import accept_call, get_call, list_calls
from api.store.events import EventSpec, apply_event, list_events
from tests.conftest import REDIS_URL, RUN_ID, delete_prefix
from tests.records import AGENT
from tests.support import async_wait_until, redis_snapshot


@pytest.fixture
async def store(redis_client: redis.Redis) -> AsyncIterator[Store]:
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    opened = open_store(Settings(REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=prefix))
    yield opened
    await opened.aclose()
    delete_prefix(redis_client, prefix)


def draft(**fields: Any) -> CallDraft:
    call_id = uuid.uuid4().hex[:24]
    values: dict[str, Any] = {
        "id": call_id,
        "workspace_id": "ws_1",
        "agent_id": "a" * 24,
        "to": "+14155552671",
        "from_number": "+15105550100",
        "sip_trunk_id": "ST_x",
        "room_name": f"room-{call_id}",
        "callback_url": None,
        "dynamic_variables": {},
        "metadata": {"tags": []},
        "campaign_id": None,
        "max_duration_seconds": 600,
        "ring_timeout_seconds": 30,
        "agent": AGENT,
        "budgets": CallBudgets.from_settings(Settings()),
    }
    return CallDraft(**(values | fields))


async def test_accept_writes_record_message_and_first_event_together(store: Store) -> None:
    call = draft()
    outcome = await accept_call(store, call, {"callId": call.id}, None)
    assert outcome.created
    record = await get_call(store, call.id)
    assert record is not None and record.status == "queued"
    assert record.metadata == {"tags": []}  # JSON survives exactly, empty lists included
    job_id = outcome.previous["response"]["jobId"]
    assert record.job_id == job_id
    assert await store.redis.lrange(store.dial_queue.ids, 0, -1) == [job_id]
    events = await list_events(store, call.id)
    assert [(e["type"], e["sequence"], e["status"]) for e in events] == [
        ("call.queued", 1, "queued")
    ]


async def test_idempotent_accept_creates_nothing_the_second_time(
    store: Store, redis_client: redis.Redis
) -> None:
    first = draft(idempotency_key="k")
    second = draft(idempotency_key="k")
    created = await accept_call(store, first, {"callId": first.id}, "hash")
    before = redis_snapshot(redis_client, store.keys.prefix)
    replay = await accept_call(store, second, {"callId": second.id}, "hash")
    assert created.created and not replay.created
    assert replay.previous["response"]["callId"] == first.id
    # Nothing at all was written by the replay: no call, event, message or index entry.
    assert redis_snapshot(redis_client, store.keys.prefix) == before
    assert await get_call(store, second.id) is None
    assert await store.redis.llen(store.dial_queue.ids) == 1


async def test_transitions_go_forward_only_and_terminal_is_final(store: Store) -> None:
    call = draft()
    await accept_call(store, call, {}, None)
    cas = await apply_event(store, call.id, EventSpec("call.dispatching", expected_status="queued"))
    again = await apply_event(
        store, call.id, EventSpec("call.dispatching", expected_status="queued")
    )
    assert (cas.outcome, again.outcome) == ("applied", "conflict")
    assert (await apply_event(store, call.id, EventSpec("call.answered"))).status == "in_progress"
    assert (await apply_event(store, call.id, EventSpec("call.ringing"))).outcome == "stale"
    ended = await apply_event(
        store,
        call.id,
        EventSpec(
            "call.ended",
            {"status": "completed"},
            call_update=CallUpdate(end_reason="hangup_by_callee"),
        ),
    )
    assert ended.status == "completed"
    assert (await apply_event(store, call.id, EventSpec("call.failed"))).outcome == "stale"
    transcript = await apply_event(store, call.id, EventSpec("call.transcript", {"turns": []}))
    assert transcript.applied and transcript.status == "completed"

    record = await get_call(store, call.id)
    assert record.end_reason == "hangup_by_callee"
    assert record.ended_at is not None
    assert 0 < await store.redis.ttl(store.keys.call(call.id)) <= store.retention_seconds
    sequences = [e["sequence"] for e in await list_events(store, call.id)]
    assert sequences == [1, 2, 3, 4, 5]


async def test_only_the_event_that_ends_a_call_reports_the_end_and_its_caller_counts_it(
    store: Store,
) -> None:
    """The store counts nothing (tests/test_layers.py keeps it away from api.metrics): it
    reports the end, and `count_call_end` counts it once, whatever comes after."""
    call = draft()
    await accept_call(store, call, {}, None)

    def canceled_total() -> float:
        return REGISTRY.get_sample_value("outdial_calls_ended_total", {"status": "canceled"}) or 0

    before = canceled_total()
    results = [
        await apply_event(store, call.id, EventSpec("call.dispatching")),
        await apply_event(store, call.id, EventSpec("call.canceled", {"reason": "r"})),
        await apply_event(store, call.id, EventSpec("call.canceled", {"reason": "r"})),
        await apply_event(store, call.id, EventSpec("call.failed")),
        await apply_event(store, call.id, EventSpec("call.transcript", {"turns": []})),
    ]
    assert [result.ended for result in results] == [False, True, False, False, False]
    for result in results:
        count_call_end(result)
    assert canceled_total() == before + 1


async def test_event_ids_apply_once(store: Store) -> None:
    call = draft()
    await accept_call(store, call, {}, None)
    event = EventSpec("call.voicemail", {"action": "hangup"}, id="evt-1")
    assert (await apply_event(store, call.id, event)).outcome == "applied"
    duplicate = await apply_event(store, call.id, event)
    assert (duplicate.outcome, duplicate.sequence) == ("duplicate", 2)
    assert len(await list_events(store, call.id)) == 2
    assert (await apply_event(store, "nope", event)).outcome == "missing"


async def test_relay_message_is_enqueued_once_per_drain(store: Store) -> None:
    call = draft(callback_url="http://127.0.0.1:9/hook")
    await accept_call(store, call, {}, None)
    await apply_event(store, call.id, EventSpec("call.dispatching"))
    messages = await store.redis.hvals(store.relay_queue.messages)
    assert len(messages) == 1  # the flag holds back a second message while one is pending
    assert json.loads(messages[0])["args"] == [call.id]
    silent = draft()
    await accept_call(store, silent, {}, None)
    assert await store.redis.llen(store.relay_queue.ids) == 1


async def test_list_cursor_never_skips_calls_created_in_the_same_millisecond(
    store: Store,
) -> None:
    ids = []
    for _ in range(7):
        call = draft()
        await accept_call(store, call, {}, None)
        ids.append(call.id)
    seen: list[str] = []
    cursor = None
    while True:
        page = await list_calls(store, "ws_1", limit=3, cursor=cursor)
        seen += [c.id for c in page.calls]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 7


def _idle_connections_closed_by_peer(store: Store) -> bool:
    """Every idle connection in redis-py's pool has read the server's close (EOF)."""
    idle = store.redis.connection_pool._available_connections
    return bool(idle) and all(c._reader is not None and c._reader.at_eof() for c in idle)


async def test_a_pooled_connection_the_server_closed_is_replaced(
    store: Store, redis_client: redis.Redis
) -> None:
    """An idle connection closed by Redis (idle timeout, failover, CLIENT KILL) is not handed
    to the next command: that command still succeeds."""
    key = store.keys.call("pool-probe")
    await store.redis.set(key, "1")
    for _ in range(3):
        connection_id = await store.redis.client_id()
        assert redis_client.client_kill_filter(_id=connection_id) == 1
        # The close has reached the client's side: the pooled connection is closed, not
        # just about to be (else the next command would prove nothing).
        await async_wait_until(lambda: _idle_connections_closed_by_peer(store), what="EOF")
        assert await store.redis.get(key) == "1"
        pipe = store.redis.pipeline(transaction=True)
        pipe.get(key)
        assert await pipe.execute() == ["1"]
