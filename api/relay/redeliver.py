"""Sending one stored event again on request, outside the call's ordered drain.

The API only enqueues (it never waits on a receiver); the relay worker makes one attempt
and records it under `redelivery:{seq}` in the delivery hash. The cursor never moves.

Redeliveries cannot flood a receiver or the relay: an event has at most one pending
redelivery (a flag set with the message, dropped when its attempt is recorded, or expiring
if its worker died), a workspace gets `OUTDIAL_REDELIVERIES_PER_MINUTE` requests per fixed
one-minute window (counted in the same script), and each attempt holds one of the
workspace's in-flight slots like any delivery (when none is free, the message comes back
shortly; a slot it frees goes to the workspace's oldest waiting call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from api.jobs.messages import REDELIVER_ACTOR, RELAY_QUEUE, encode_message
from api.relay.drain import attempt
from api.relay.payload import CallTarget
from api.relay.state import DeliveryState
from api.relay.steps import LEASE_MARGIN_MS, now_ms
from api.settings import Settings
from api.store.base import Store
from api.store.lua import WAKE_WAITER_FN

RATE_WINDOW_MS = 60_000
# A pending flag outlives any run of its message (time limit, retries, share turn-aways),
# so a redelivery whose worker died can be asked for again after this at the latest.
PENDING_TTL_MS = 600_000
# When the workspace has no free in-flight slot, the redelivery comes back this much later.
BUSY_RETRY_MS = 1_000

# KEYS: pending flag, rate counter, relay msgs, relay queue.
# ARGV: msg_id, msg_body, per-window limit, window_ms, pending_ttl_ms.
# Returns {'queued', 0}, {'pending', ms left} or {'limited', ms until the window resets}.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'pending', redis.call('PTTL', KEYS[1])} end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= tonumber(ARGV[3]) then return {'limited', redis.call('PTTL', KEYS[2])} end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[5])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[4], ARGV[1])
return {'queued', 0}
"""

# Takes one of the workspace's in-flight slots for `member` (see `lua.RELAY_NEXT_FN`).
# KEYS: inflight. ARGV: member, now_ms, lease_ms, max_in_flight. Returns 1 or 0 (busy).
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# Records the attempt ('' = none), frees the slot (to the workspace's oldest waiting call)
# and, when done ('1'), drops the pending flag, in one step.
# KEYS: call, delivery, inflight, waiting, relay_due, pending flag.
# ARGV: field, state JSON, member, now_ms, done.
_FINISH = (
    WAKE_WAITER_FN
    + """
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if redis.call('ZREM', KEYS[3], ARGV[3]) == 1 then
  wake_waiter(KEYS[4], KEYS[5], tonumber(ARGV[4]))
end
if ARGV[5] == '1' then redis.call('DEL', KEYS[6]) end
return 1
"""
)

EnqueueOutcome = Literal["queued", "pending", "limited"]


@dataclass(frozen=True, slots=True)
class Enqueued:
    outcome: EnqueueOutcome
    job_id: str
    retry_after_ms: int = 0


def redelivery_field(sequence: int) -> str:
    return f"redelivery:{sequence}"


def _slot_member(call_id: str, sequence: int) -> str:
    """A redelivery's in-flight member, apart from the call's own drain."""
    return f"redeliver:{call_id}:{sequence}"


async def enqueue_redelivery(
    store: Store, settings: Settings, workspace_id: str, call_id: str, sequence: int
) -> Enqueued:
    """Queue a one-off delivery of one event, unless one is pending for it or the
    workspace used its redeliveries of this minute."""
    keys = store.keys
    message = encode_message(RELAY_QUEUE, REDELIVER_ACTOR, call_id, str(sequence))
    outcome, ms = await store.redis.register_script(_ENQUEUE)(
        keys=[
            keys.relay_redelivery(call_id, sequence),
            keys.relay_redelivery_rate(workspace_id),
            store.relay_queue.messages,
            store.relay_queue.ids,
        ],
        args=[
            message.message_id,
            message.body,
            settings.redeliveries_per_minute,
            RATE_WINDOW_MS,
            PENDING_TTL_MS,
        ],
    )
    return Enqueued(outcome, message.message_id, max(int(ms), 0))


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


async def _finish(
    store: Store,
    call_id: str,
    sequence: int,
    workspace_id: str,
    state: DeliveryState | None,
    done: bool = True,
) -> None:
    """Record `state` (if any) and free the slot; `done` also ends the pending flag (a run
    that raised keeps it: its message is retried)."""
    keys = store.keys
    await store.redis.register_script(_FINISH)(
        keys=[
            keys.call(call_id),
            keys.delivery(call_id),
            keys.relay_in_flight(workspace_id),
            keys.relay_waiting(workspace_id),
            keys.relay_due(),
            keys.relay_redelivery(call_id, sequence),
        ],
        args=[
            redelivery_field(sequence) if state else "",
            state.to_json() if state else "",
            _slot_member(call_id, sequence),
            now_ms(),
            "1" if done else "0",
        ],
    )


async def redeliver_event(
    store: Store, settings: Settings, call_id: str, sequence: int
) -> int | None:
    """One attempt at the event, in one of the workspace's in-flight slots. Returns None
    when done, or the ms after which to try again (no slot free)."""
    keys = store.keys
    target = await _target(store, call_id)
    raw_event = await store.redis.lindex(keys.events(call_id), sequence - 1)
    if target is None or raw_event is None:  # the call or the event expired since
        await _finish(store, call_id, sequence, target.workspace_id if target else "", None)
        return None
    member = _slot_member(call_id, sequence)
    lease_ms = int(settings.callback_timeout_seconds * 1000) + LEASE_MARGIN_MS
    took = await store.redis.register_script(_TAKE_SLOT)(
        keys=[keys.relay_in_flight(target.workspace_id)],
        args=[member, now_ms(), lease_ms, settings.callback_max_in_flight_per_workspace],
    )
    if not took:
        return BUSY_RETRY_MS
    try:
        result = await attempt(target, json.loads(raw_event), settings)
    except BaseException:
        await _finish(store, call_id, sequence, target.workspace_id, None, done=False)
        raise
    previous = DeliveryState.from_json(
        await store.redis.hget(keys.delivery(call_id), redelivery_field(sequence))
    )
    recorded = DeliveryState(
        state="delivered" if result.outcome == "delivered" else "failed",
        attempts=previous.attempts + 1,
        first_attempt_ms=previous.first_attempt_ms or now_ms(),
        last_attempt_ms=now_ms(),
        last_status=result.status,
        last_error=result.error,
    )
    await _finish(store, call_id, sequence, target.workspace_id, recorded)
    return None
