"""The drain against real Redis and a real receiver, in-process: the parking paths (retry,
busy workspace, concurrent drain, error) and the due-retry claimer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import dramatiq
import pytest
from aiohttp import web

from api.jobs.due_claimer import DueClaimer
from api.relay import drain as drain_module
from api.relay.drain import drain_call
from api.relay.http import open_delivery_session
from api.relay.steps import LOCKED_RETRY_MS
from api.settings import Settings
from api.store.base import Store, open_store
from api.store.clock import now_ms
from api.store.due_claims import Schedule
from api.store.events import EventSpec, apply_event
from api.store.messages import RELAY_ACTOR
from tests.test_relay_e2e import Receiver

WORKSPACE = "ws_drain"
SECRET = "whsec_drain"


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = open_store(settings)
    await opened.redis.hset(opened.keys.workspace(WORKSPACE), "webhook_secret", SECRET)
    yield opened
    await opened.aclose()


@pytest.fixture
async def session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """The callback session, as the worker's resources open it."""
    opened = open_delivery_session(settings.callback_allow_private)
    yield opened
    await opened.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def _call_with_events(store: Store, call_id: str, url: str, count: int) -> None:
    await store.redis.hset(
        store.keys.call(call_id),
        mapping={
            "id": call_id,
            "workspace_id": WORKSPACE,
            "room_name": f"room-{call_id}",
            "callback_url": url,
            "metadata": '{"m":1}',
            "status": "dialing",
            "seq": 0,
        },
    )
    for turn in range(count):
        await apply_event(store, call_id, EventSpec("call.transcript", {"turn": turn}))


async def _due_at(store: Store, call_id: str) -> float | None:
    """When the call is due again (ms), or None when it is not parked."""
    return await store.redis.zscore(store.keys.relay_due(), call_id)


async def _drain_timed(
    store: Store, settings: Settings, session: aiohttp.ClientSession, call_id: str
) -> tuple[int, int]:
    """Drain once; returns the clock (ms) just before and just after, so a due time set
    during the drain is checked against a window that does not depend on the machine's
    speed: `before + delay <= due <= after + delay`."""
    before = now_ms()
    await drain_call(store, settings, session, call_id)
    return before, now_ms()


async def _delivery(store: Store, call_id: str) -> dict[str, Any]:
    return await store.redis.hgetall(store.keys.delivery(call_id))


async def test_drain_delivers_in_order_then_drops_flag_lease_and_slot(
    store: Store, settings: Settings, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    await _call_with_events(store, "c-ok", f"{receiver.url}/ok", 3)
    assert await store.redis.exists(store.keys.relay_active("c-ok"))
    await drain_call(store, settings, session, "c-ok")
    assert [p["data"]["turn"] for p in receiver.delivered("/ok")] == [0, 1, 2]
    assert (await _delivery(store, "c-ok"))["cursor"] == "3"
    for key in (
        store.keys.relay_active("c-ok"),
        store.keys.relay_lock("c-ok"),
        store.keys.relay_in_flight(WORKSPACE),
    ):
        assert not await store.redis.exists(key), key


async def test_retryable_answer_parks_the_call_honouring_retry_after(
    store: Store, settings: Settings, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async def throttled(_: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "2"})

    receiver.behaviours["/busy"] = throttled
    await _call_with_events(store, "c-429", f"{receiver.url}/busy", 2)
    before, after = await _drain_timed(store, settings, session, "c-429")
    assert len(receiver.attempts("/busy")) == 1  # event 2 waits behind event 1
    # Retry-After (2 s) beats the schedule's first delay (1 s, jittered).
    assert before + 2000 <= await _due_at(store, "c-429") <= after + 2000
    state = json.loads((await _delivery(store, "c-429"))["1"])
    assert (state["state"], state["attempts"], state["last_status"]) == ("pending", 1, 429)
    assert await store.redis.exists(store.keys.relay_active("c-429"))
    assert not await store.redis.exists(store.keys.relay_lock("c-429"))


async def test_workspace_at_its_in_flight_cap_waits_for_a_slot_without_polling(
    store: Store, settings: Settings, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    capped = settings.model_copy(update={"callback_max_in_flight_per_workspace": 1})
    slots = store.keys.relay_in_flight(WORKSPACE)
    waiting = store.keys.relay_waiting(WORKSPACE)
    lease_ends = now_ms() + 60_000
    await store.redis.zadd(slots, {"stuck-call": lease_ends})
    await _call_with_events(store, "c-cap", f"{receiver.url}/cap", 1)
    await drain_call(store, capped, session, "c-cap")
    assert receiver.attempts("/cap") == []
    assert await store.redis.zrange(waiting, 0, -1) == ["c-cap"]
    # Not polled: due only as a backstop, when the slot holder's lease runs out.
    assert await _due_at(store, "c-cap") == lease_ends
    assert not await store.redis.exists(store.keys.relay_lock("c-cap"))

    # A call of the workspace that holds a slot and finishes hands it to the waiter.
    await store.redis.zrem(slots, "stuck-call")
    await _call_with_events(store, "c-first", f"{receiver.url}/first", 1)
    await store.redis.zadd(waiting, {"c-later": now_ms() + 1})
    before, after = await _drain_timed(store, capped, session, "c-first")
    assert len(receiver.delivered("/first")) == 1
    # Woken: due at once (not at the old backstop a minute away).
    assert before <= await _due_at(store, "c-cap") <= after
    assert await store.redis.zrange(waiting, 0, -1) == ["c-later"]  # one slot, one waiter
    before, after = await _drain_timed(store, capped, session, "c-cap")
    assert len(receiver.delivered("/cap")) == 1
    # ... and so does the woken call when it is done.
    assert await store.redis.zrange(waiting, 0, -1) == []
    assert before <= await _due_at(store, "c-later") <= after


async def test_a_second_drain_parks_without_advancing_an_earlier_retry(
    store: Store, settings: Settings, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    await _call_with_events(store, "c-lock", f"{receiver.url}/lock", 1)
    await store.redis.set(store.keys.relay_lock("c-lock"), "someone-else", px=10_000)
    before, after = await _drain_timed(store, settings, session, "c-lock")
    assert receiver.attempts("/lock") == []
    assert before + LOCKED_RETRY_MS <= await _due_at(store, "c-lock") <= after + LOCKED_RETRY_MS
    later = now_ms() + 60_000
    await store.redis.zadd(store.keys.relay_due(), {"c-lock": later})
    await drain_call(store, settings, session, "c-lock")
    assert await _due_at(store, "c-lock") == later


async def test_an_unexpected_error_parks_the_call(
    store: Store,
    settings: Settings,
    session: aiohttp.ClientSession,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(drain_module, "post_event", broken)
    await _call_with_events(store, "c-err", f"{receiver.url}/err", 1)
    before, after = await _drain_timed(store, settings, session, "c-err")
    assert "relay drain of call c-err failed" in caplog.text
    retry = drain_module.ERROR_RETRY_MS
    assert before + retry <= await _due_at(store, "c-err") <= after + retry
    assert not await store.redis.exists(store.keys.relay_lock("c-err"))
    assert not await store.redis.exists(store.keys.relay_in_flight(WORKSPACE))
    assert await store.redis.exists(store.keys.relay_active("c-err"))


async def test_a_vanished_call_drops_its_flag(
    store: Store, settings: Settings, session: aiohttp.ClientSession
) -> None:
    await store.redis.set(store.keys.relay_active("c-gone"), "1")
    await drain_call(store, settings, session, "c-gone")
    assert not await store.redis.exists(store.keys.relay_active("c-gone"))
    assert await _due_at(store, "c-gone") is None


async def test_claimer_moves_only_due_calls_into_the_relay_queue(
    store: Store, settings: Settings
) -> None:
    now = now_ms()
    await store.redis.zadd(store.keys.relay_due(), {"c-due": now - 5, "c-later": now + 60_000})
    claimer = DueClaimer(settings, Schedule.relay_retries(settings))
    try:
        assert claimer.claim_once() == 1
        assert claimer.claim_once() == 0
    finally:
        claimer.stop()
    assert await store.redis.zrange(store.keys.relay_due(), 0, -1) == ["c-later"]
    message_ids = await store.redis.lrange(store.relay_queue.ids, 0, -1)
    assert len(message_ids) == 1
    body = await store.redis.hget(store.relay_queue.messages, message_ids[0])
    message = dramatiq.Message.decode(body.encode())
    assert (message.actor_name, message.args) == (RELAY_ACTOR, ("c-due",))
    assert message.options["redis_message_id"] == message_ids[0]
