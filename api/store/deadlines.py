"""Call deadlines.

The `deadlines` zset is written by `apply_event` (every non-terminal status gets one,
terminal ones lose theirs) and by the claim of a due deadline (one lease later); here the
reconciler pushes a deadline further without ever re-adding a call that ended meanwhile
(`ZADD XX`: the terminal step removed it). A claim names the score it took the deadline
at; `deadline_of` tells whether the call's entry moved since.
"""

from __future__ import annotations

import uuid

from api.store.base import Store
from api.store.messages import DIAL_ACTOR, DIAL_QUEUE, encode_message


async def push_deadline(store: Store, call_id: str, at_ms: int) -> None:
    """Move a live call's deadline; a call without one (it ended) stays without."""
    await store.redis.zadd(store.keys.deadlines(), {call_id: at_ms}, xx=True)


async def deadline_of(store: Store, call_id: str) -> int | None:
    """The call's deadline (ms), None when it has none (it ended, or is gone)."""
    score = await store.redis.zscore(store.keys.deadlines(), call_id)
    return None if score is None else int(score)


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
    pipe.publish(store.dial_queue.ids, "")  # the queue's wake-up (api/jobs/wakeup.py)
    await pipe.execute()
