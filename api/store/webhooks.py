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
from api.store.clock import now_ms

SEEN_TTL_SECONDS = 86_400


async def webhook_seen(store: Store, webhook_id: str) -> bool:
    return bool(await store.redis.exists(store.keys.livekit_webhook(webhook_id)))


async def mark_webhook_seen(store: Store, webhook_id: str) -> None:
    await store.redis.set(store.keys.livekit_webhook(webhook_id), "1", ex=SEEN_TTL_SECONDS)


async def note_webhook_received(store: Store) -> None:
    await store.redis.hset(store.keys.webhook_health(), "last_received_ms", now_ms())


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
