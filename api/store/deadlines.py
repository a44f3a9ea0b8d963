"""Call deadlines and what the reconciler learns about LiveKit's webhooks.

The `deadlines` zset is written by `apply_event` (every non-terminal status gets one,
terminal ones lose theirs) and by the claim of a due deadline (one lease later); here the
reconciler pushes a deadline further without ever re-adding a call that ended meanwhile
(`ZADD XX`: the terminal step removed it). `lkhook:health` holds when a webhook last
arrived and when the reconciler last settled a call that LiveKit's webhooks should have
settled: the second newer than the first means webhooks are not reaching the API.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from api.store.base import Store
from api.store.messages import DIAL_ACTOR, DIAL_QUEUE, encode_message


async def push_deadline(store: Store, call_id: str, at_ms: int) -> None:
    """Move a live call's deadline; a call without one (it ended) stays without."""
    await store.redis.zadd(store.keys.deadlines(), {call_id: at_ms}, xx=True)


async def forget_deadline(store: Store, call_id: str) -> None:
    """Drop the deadline of a call that is terminal (or gone)."""
    await store.redis.zrem(store.keys.deadlines(), call_id)


async def queue_dial(store: Store, call_id: str) -> None:
    """Queue the dial step (`dial_call`) with a fresh owner token; the step's own
    compare-and-set makes a second message harmless."""
    message = encode_message(DIAL_QUEUE, DIAL_ACTOR, call_id, uuid.uuid4().hex)
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(store.dial_queue.messages, message.message_id, message.body)
    pipe.rpush(store.dial_queue.ids, message.message_id)
    await pipe.execute()


def _now_ms() -> int:
    return int(time.time() * 1000)


async def note_webhook_received(store: Store) -> None:
    await store.redis.hset(store.keys.webhook_health(), "last_received_ms", _now_ms())


async def note_webhooks_missed(store: Store) -> None:
    await store.redis.hset(store.keys.webhook_health(), "last_missed_ms", _now_ms())


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
