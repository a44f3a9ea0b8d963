"""A webhook's first read (api.store.webhooks.note_webhook_arrival, call_of_room.lua) on
real Redis: its arrival noted, whether its id was seen and its room's call, in one round
trip."""

from __future__ import annotations

from api.store.base import Store
from api.store.calls import accept_call
from api.store.webhooks import mark_webhook_seen, note_webhook_arrival, read_webhook_health
from tests.test_store import draft


async def test_a_webhook_of_a_calls_room_finds_the_call_and_notes_its_arrival(
    store: Store,
) -> None:
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    arrival = await note_webhook_arrival(store, "EV_1", call.room_name)
    assert not arrival.seen
    assert arrival.call is not None and arrival.call.id == call.id
    assert (await read_webhook_health(store)).last_received_ms is not None
    await mark_webhook_seen(store, "EV_1")
    assert (await note_webhook_arrival(store, "EV_1", call.room_name)).seen


async def test_a_room_without_a_call_or_a_call_gone_finds_none(store: Store) -> None:
    assert (await note_webhook_arrival(store, "EV_2", "room-nobody")).call is None
    await store.redis.set(store.keys.room("room-orphan"), "c" * 24)
    orphan = await note_webhook_arrival(store, "", "room-orphan")
    assert orphan.call is None and not orphan.seen
    assert (await note_webhook_arrival(store, "", "")).call is None
