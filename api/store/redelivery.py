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
from api.store.messages import REDELIVER_ACTOR, RELAY_QUEUE, encode_message
from api.store.scripts import Key, ScriptCall

RATE_WINDOW_MS = 60_000
# A pending flag outlives any run of its message (time limit, retries, share turn-aways),
# so a redelivery whose worker died can be asked for again after this at the latest.
PENDING_TTL_MS = 600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueRedelivery(ScriptCall):
    NAME = "redelivery_enqueue"
    pending: Key
    rate: Key
    relay_msgs: Key
    relay_queue: Key
    msg_id: str
    msg_body: str
    per_window: int
    window_ms: int
    pending_ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TakeRedeliverySlot(ScriptCall):
    NAME = "redelivery_take_slot"
    in_flight: Key
    member: str
    now_ms: int
    lease_ms: int
    max_in_flight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishRedelivery(ScriptCall):
    NAME = "redelivery_finish"
    call: Key
    delivery: Key
    in_flight: Key
    waiting: Key
    relay_due: Key
    pending: Key
    field: str  # '' records nothing
    state_json: str
    member: str
    now_ms: int
    done: str  # '1' | '0'


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
    outcome, ms = await store.run(
        EnqueueRedelivery(
            pending=keys.relay_redelivery(call_id, sequence),
            rate=keys.relay_redelivery_rate(workspace_id),
            relay_msgs=store.relay_queue.messages,
            relay_queue=store.relay_queue.ids,
            msg_id=message.message_id,
            msg_body=message.body,
            per_window=per_minute,
            window_ms=RATE_WINDOW_MS,
            pending_ttl_ms=PENDING_TTL_MS,
        )
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
    took = await store.run(
        TakeRedeliverySlot(
            in_flight=store.keys.relay_in_flight(workspace_id),
            member=_slot_member(call_id, sequence),
            now_ms=now_ms(),
            lease_ms=lease_ms,
            max_in_flight=max_in_flight,
        )
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
    await store.run(
        FinishRedelivery(
            call=keys.call(call_id),
            delivery=keys.delivery(call_id),
            in_flight=keys.relay_in_flight(workspace_id),
            waiting=keys.relay_waiting(workspace_id),
            relay_due=keys.relay_due(),
            pending=keys.relay_redelivery(call_id, sequence),
            field=redelivery_field(sequence) if state_json else "",
            state_json=state_json or "",
            member=_slot_member(call_id, sequence),
            now_ms=now_ms(),
            done="1" if done else "0",
        )
    )
