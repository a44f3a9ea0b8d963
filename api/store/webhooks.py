"""What the store keeps about LiveKit's webhooks: which were seen, and whether they arrive.

A webhook id is marked seen (`lkhook:{id}`, 24 h) by its handler only after its events were
applied, so one that failed half-way is applied in full when LiveKit retries it.
`lkhook:health` holds when a webhook last arrived and when the reconciler last settled a
call that LiveKit's webhooks should have settled: the second newer than the first means
webhooks are not reaching the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.store.base import Store
from api.store.call_record import CallRecord, read_call
from api.store.clock import now_ms
from api.store.scripts import Key, ScriptCall

SEEN_TTL_SECONDS = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookArrivalScript(ScriptCall):
    NAME = "webhook_arrival"
    health: Key
    seen: Key  # '' when the webhook has no id
    room: Key  # '' when it names no room
    now_ms: int
    call_prefix: str  # the call's key is this and its id


@dataclass(frozen=True, slots=True)
class WebhookArrival:
    """What a webhook's handler reads first: whether its id was seen, and its room's call
    (None: no room, no such call, or unreadable)."""

    seen: bool
    call: CallRecord | None


async def note_webhook_arrival(store: Store, webhook_id: str, room_name: str) -> WebhookArrival:
    """Note that a webhook arrived (`lkhook:health`), and read whether its id (when it has
    one) was seen and its room's call (when it names a room), in one script
    (webhook_arrival.lua)."""
    keys = store.keys
    seen, call_id, fields = await store.run(
        WebhookArrivalScript(
            health=keys.webhook_health(),
            seen=keys.livekit_webhook(webhook_id) if webhook_id else "",
            room=keys.room(room_name) if room_name else "",
            now_ms=now_ms(),
            call_prefix=keys.call(""),
        )
    )
    if not call_id:
        return WebhookArrival(bool(seen), None)
    raw = dict(zip(fields[::2], fields[1::2], strict=True))
    return WebhookArrival(bool(seen), read_call(raw, call_id))


async def mark_webhook_seen(store: Store, webhook_id: str) -> None:
    await store.redis.set(store.keys.livekit_webhook(webhook_id), "1", ex=SEEN_TTL_SECONDS)


async def note_webhooks_missed(store: Store) -> None:
    await store.redis.hset(store.keys.webhook_health(), "last_missed_ms", now_ms())


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    last_received_ms: int | None
    last_missed_ms: int | None

    @property
    def missing(self) -> bool:
        """A call was settled without its webhooks after the last webhook arrived."""
        if self.last_missed_ms is None:
            return False
        return self.last_received_ms is None or self.last_missed_ms > self.last_received_ms


async def read_webhook_health(store: Store) -> WebhookHealth:
    received, missed = await store.redis.hmget(
        store.keys.webhook_health(), ["last_received_ms", "last_missed_ms"]
    )
    return WebhookHealth(int(received) if received else None, int(missed) if missed else None)
