"""Sending one stored event again on request, outside the call's ordered drain.

The API only enqueues (it never waits on a receiver); the relay worker makes one attempt
and records it under `redelivery:{seq}` in the delivery hash. The cursor never moves.
"""

from __future__ import annotations

import json

from api.jobs.messages import REDELIVER_ACTOR, RELAY_QUEUE, encode_message
from api.relay.drain import attempt
from api.relay.payload import CallTarget
from api.relay.state import DeliveryState
from api.relay.steps import now_ms
from api.settings import Settings
from api.store.base import Store


def redelivery_field(sequence: int) -> str:
    return f"redelivery:{sequence}"


async def enqueue_redelivery(store: Store, call_id: str, sequence: int) -> str:
    """Queue a one-off delivery of one event; returns the job (message) id."""
    message = encode_message(RELAY_QUEUE, REDELIVER_ACTOR, call_id, str(sequence))
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(store.relay_queue.messages, message.message_id, message.body)
    pipe.rpush(store.relay_queue.ids, message.message_id)
    await pipe.execute()
    return message.message_id


async def _target(store: Store, call_id: str) -> CallTarget | None:
    keys = store.keys
    call = await store.redis.hgetall(keys.call(call_id))
    if not call.get("callback_url"):
        return None
    secret, disabled = await store.redis.hmget(
        keys.workspace(call["workspace_id"]), ["webhook_secret", "disabled"]
    )
    return CallTarget(
        call_id=call_id,
        workspace_id=call["workspace_id"],
        room_name=call["room_name"],
        callback_url=call["callback_url"],
        metadata_json=call.get("metadata") or "{}",
        webhook_secret=secret or "",
        workspace_disabled=disabled == "1",
    )


async def redeliver_event(store: Store, settings: Settings, call_id: str, sequence: int) -> None:
    keys = store.keys
    target = await _target(store, call_id)
    raw_event = await store.redis.lindex(keys.events(call_id), sequence - 1)
    if target is None or raw_event is None:
        return  # the call or the event expired since the request
    result = await attempt(target, json.loads(raw_event), settings)
    field = redelivery_field(sequence)
    previous = DeliveryState.from_json(await store.redis.hget(keys.delivery(call_id), field))
    recorded = DeliveryState(
        state="delivered" if result.outcome == "delivered" else "failed",
        attempts=previous.attempts + 1,
        first_attempt_ms=previous.first_attempt_ms or now_ms(),
        last_attempt_ms=now_ms(),
        last_status=result.status,
        last_error=result.error,
    )
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(keys.delivery(call_id), field, recorded.to_json())
    ttl = await store.redis.pttl(keys.call(call_id))
    if ttl > 0:
        pipe.pexpire(keys.delivery(call_id), ttl)
    await pipe.execute()
