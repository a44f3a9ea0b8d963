"""The Redis side of a one-off redelivery: its queueing, its in-flight slot, its record.

Invariants, each kept by one atomic script: an event has at most one pending redelivery (a
flag set with the message, dropped when its attempt is recorded, or expiring if its worker
died); a workspace gets a number of requests per fixed one-minute window (counted in the
same script as the flag and the message); each attempt holds one of the workspace's
in-flight slots like any delivery, and the slot it frees goes to the workspace's oldest
waiting call. Attempts are recorded under `redelivery:{seq}` in the call's delivery hash
(`redelivery_field`); the drain's cursor never moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from api.store.base import Store
from api.store.call_record import CallRecord
from api.store.call_workspace import call_with_workspace, queue_call_with_workspace
from api.store.clock import now_ms
from api.store.lua_relay import WAKE_WAITER_FN
from api.store.messages import REDELIVER_ACTOR, RELAY_QUEUE, encode_message

RATE_WINDOW_MS = 60_000
# A pending flag outlives any run of its message (time limit, retries, share turn-aways),
# so a redelivery whose worker died can be asked for again after this at the latest.
PENDING_TTL_MS = 600_000

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
redis.call('PUBLISH', KEYS[4], '')
return {'queued', 0}
"""

# Takes one of the workspace's in-flight slots for `member` (see `lua_relay.RELAY_NEXT_FN`).
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


@dataclass(frozen=True, slots=True)
class RedeliverySource:
    """What one redelivery sends, read in one pipeline."""

    call: CallRecord | None  # None: expired, or unreadable (`api.store.records`)
    event_json: str | None  # the event at that sequence (None when gone)
    webhook_secret: str
    workspace_disabled: bool


def redelivery_field(sequence: int) -> str:
    """Where the delivery hash records the redeliveries of event `sequence`."""
    return f"redelivery:{sequence}"


def _slot_member(call_id: str, sequence: int) -> str:
    """A redelivery's in-flight member, apart from the call's own drain."""
    return f"redeliver:{call_id}:{sequence}"


async def enqueue_redelivery(
    store: Store, workspace_id: str, call_id: str, sequence: int, per_minute: int
) -> Enqueued:
    """Queue a one-off delivery of one event, unless one is pending for it or the
    workspace used its `per_minute` redeliveries of this minute."""
    keys = store.keys
    message = encode_message(RELAY_QUEUE, REDELIVER_ACTOR, call_id, str(sequence))
    outcome, ms = await store.redis.register_script(_ENQUEUE)(
        keys=[
            keys.relay_redelivery(call_id, sequence),
            keys.relay_redelivery_rate(workspace_id),
            store.relay_queue.messages,
            store.relay_queue.ids,
        ],
        args=[message.message_id, message.body, per_minute, RATE_WINDOW_MS, PENDING_TTL_MS],
    )
    return Enqueued(outcome, message.message_id, max(int(ms), 0))


async def read_redelivery_source(store: Store, call_id: str, sequence: int) -> RedeliverySource:
    """The call with its workspace's secret and state (`api.store.call_workspace`) and the
    event at `sequence`."""
    pipe = store.redis.pipeline(transaction=False)
    await queue_call_with_workspace(store, pipe, call_id)
    pipe.lindex(store.keys.events(call_id), sequence - 1)
    reply, event_json = await pipe.execute()
    found = call_with_workspace(reply, call_id)
    return RedeliverySource(found.call, event_json, found.webhook_secret, found.workspace_disabled)


async def take_redelivery_slot(
    store: Store, workspace_id: str, call_id: str, sequence: int, lease_ms: int, max_in_flight: int
) -> bool:
    """One of the workspace's in-flight slots for this redelivery; False when none is free."""
    took = await store.redis.register_script(_TAKE_SLOT)(
        keys=[store.keys.relay_in_flight(workspace_id)],
        args=[_slot_member(call_id, sequence), now_ms(), lease_ms, max_in_flight],
    )
    return bool(took)


async def read_redelivery_state(store: Store, call_id: str, sequence: int) -> str | None:
    """The recorded state (JSON) of the event's earlier redeliveries, if any."""
    field = redelivery_field(sequence)
    return cast(str | None, await store.redis.hget(store.keys.delivery(call_id), field))


async def finish_redelivery(
    store: Store,
    call_id: str,
    sequence: int,
    workspace_id: str,
    state_json: str | None,
    done: bool = True,
) -> None:
    """Record `state_json` (if any) and free the slot; `done` also ends the pending flag (a
    run that raised keeps it: its message is retried)."""
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
            redelivery_field(sequence) if state_json else "",
            state_json or "",
            _slot_member(call_id, sequence),
            now_ms(),
            "1" if done else "0",
        ],
    )
