"""What the readiness probe and `/metrics` read from Redis: is it there, and how much waits.

Invariant: reads only, each one round trip, so a probe never changes what it measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.store.base import Store


async def ping(store: Store) -> None:
    """Raises (redis-py's errors) unless Redis answers."""
    await store.redis.ping()


@dataclass(frozen=True, slots=True)
class Backlog:
    dial_messages: int
    relay_messages: int
    # Calls whose callbacks wait for a retry, and calls with a deadline (the live ones).
    relay_retries: int
    calls_with_deadline: int


async def read_backlog(store: Store) -> Backlog:
    pipe = store.redis.pipeline(transaction=False)
    pipe.llen(store.dial_queue.ids)
    pipe.llen(store.relay_queue.ids)
    pipe.zcard(store.keys.relay_due())
    pipe.zcard(store.keys.deadlines())
    dial, relay, due, live = await pipe.execute()
    return Backlog(dial, relay, due, live)
