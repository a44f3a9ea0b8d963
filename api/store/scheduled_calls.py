"""Scheduled calls in the store: accept for later, move, cancel, and the due claim's
arguments (the scripts are accept_scheduled.lua, move_scheduled.lua, cancel_call.lua,
reschedule_queued.lua and claim_scheduled.lua, whose header states the invariant: a call is
`scheduled` exactly while it is in the due set, without a dispatch message).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic_core import to_json

from agent_runtime.contract import ScheduledReason
from api.store.base import Store
from api.store.billing import RESERVE_SECONDS
from api.store.call_record import CallDraft
from api.store.calls import (
    IDEMPOTENCY_TTL_SECONDS,
    AcceptOutcome,
    AcceptWrite,
    run_accept,
)
from api.store.clock import now_ms
from api.store.events import (
    ApplyResult,
    EventArgs,
    EventKeys,
    EventQuota,
    EventSpec,
    apply_args,
    apply_result,
    event_keys,
    iso_timestamp,
)
from api.store.keys import Keys
from api.store.messages import (
    DIAL_QUEUE,
    DISPATCH_ACTOR,
    RELAY_ACTOR,
    RELAY_QUEUE,
    QueueKeys,
    encode_message,
    message_template,
)
from api.store.scripts import KEYS, Key, ScriptCall


@dataclass(frozen=True, slots=True)
class Due:
    """When a call is due (ms) and why it waits until then."""

    at_ms: int
    reason: ScheduledReason


# A scheduled call takes moves until it holds this many events (a call ready to dial has a
# handful): past it, `over_quota` and nothing changes.
MAX_EVENTS_WHEN_MOVED = 100
MOVE_QUOTA = EventQuota(max_events=MAX_EVENTS_WHEN_MOVED, max_bytes=1 << 20, after_end_ms=0)


def scheduled_event(due: Due) -> EventSpec:
    return EventSpec(
        "call.scheduled", {"scheduledAt": iso_timestamp(due.at_ms / 1000), "reason": due.reason}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptScheduled(ScriptCall):
    NAME = "accept_scheduled"
    # Up to `reserve_s`: lib/accept_record.lua's, as in `calls.AcceptCall`.
    event_keys: Annotated[EventKeys, KEYS]
    ws_calls: Key
    room: Key
    idempotency: Key  # '' when the request has no idempotency key
    balance: Key
    do_not_call: Key
    due: Key
    idem_value: str
    idem_ttl_s: int
    created_ms: int
    room_ttl_s: int
    record_json: str
    reserve_s: int
    due_ms: int
    event: EventArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveScheduled(ScriptCall):
    NAME = "move_scheduled"
    event_keys: Annotated[EventKeys, KEYS]
    due: Key
    due_ms: int
    reason: str
    event: EventArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelCall(ScriptCall):
    NAME = "cancel_call"
    event_keys: Annotated[EventKeys, KEYS]
    due: Key
    event: EventArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class RescheduleQueued(ScriptCall):
    NAME = "reschedule_queued"
    event_keys: Annotated[EventKeys, KEYS]
    due: Key
    due_ms: int
    reason: str
    job_id: str
    event: EventArgs


def accept_scheduled_write(
    store: Store,
    draft: CallDraft,
    response: dict[str, Any],
    request_hash: str | None,
    due: Due,
) -> AcceptWrite:
    """The accept of a call due later (`accept_scheduled_call`), built but not sent."""
    keys = store.keys
    now = int(time.time() * 1000)
    job_id = encode_message(DIAL_QUEUE, DISPATCH_ACTOR, draft.id).message_id
    accepted = draft.record(now, job_id=job_id)
    record = dataclasses.replace(
        accepted,
        status="scheduled",
        transitions={"scheduled": now},
        scheduled_at=due.at_ms,
        scheduled_reason=due.reason,
    )
    response = response | {"jobId": job_id}
    idem_key = keys.idempotency(draft.workspace_id, draft.idempotency_key or "")
    idem_value = to_json({"request_hash": request_hash, "response": response}).decode()
    event = scheduled_event(due)
    relay_for = draft.id if draft.callback_url else ""
    call = AcceptScheduled(
        event_keys=event_keys(store, draft.id),
        ws_calls=keys.calls(draft.workspace_id),
        room=keys.room(draft.room_name),
        idempotency=idem_key if draft.idempotency_key else "",
        due=keys.scheduled_due(),
        balance=keys.balance(draft.workspace_id),
        do_not_call=keys.do_not_call(draft.workspace_id),
        idem_value=idem_value,
        idem_ttl_s=IDEMPOTENCY_TTL_SECONDS,
        created_ms=now,
        room_ttl_s=store.retention_seconds,
        record_json=to_json(record.to_hash()).decode(),
        due_ms=due.at_ms,
        reserve_s=RESERVE_SECONDS,
        event=apply_args(store, event, now, relay_for).informational(),
    )
    return AcceptWrite(call, draft.id, response, draft.to)


async def accept_scheduled_call(
    store: Store,
    draft: CallDraft,
    response: dict[str, Any],
    request_hash: str | None,
    due: Due,
) -> AcceptOutcome:
    """Store the call `scheduled` until `due`, its idempotency record and `call.scheduled`,
    in one script (accept_scheduled.lua), which reserves its first minute like
    `calls.accept_call` (refused: `balance_short`). Its dispatch message is not written
    now: its id is (`job_id`), so the claim writes exactly that message later."""
    return await run_accept(
        store, accept_scheduled_write(store, draft, response, request_hash, due)
    )


async def move_scheduled_call(store: Store, call_id: str, due: Due) -> ApplyResult:
    """Give a still `scheduled` call a new due time; outcome `conflict` (with the status)
    once it is not scheduled any more, `missing` when it is gone."""
    # Each move is an event on the call: bounded, so a client looping PATCH cannot grow it.
    event = dataclasses.replace(scheduled_event(due), quota=MOVE_QUOTA)
    reply = await store.run(
        MoveScheduled(
            event_keys=event_keys(store, call_id),
            due=store.keys.scheduled_due(),
            due_ms=due.at_ms,
            reason=due.reason,
            event=apply_args(store, event, now_ms(), call_id).informational(),
        )
    )
    return ApplyResult(outcome=reply[0], sequence=int(reply[1]), status=reply[2])


async def reschedule_queued_call(store: Store, call_id: str, due: Due) -> ApplyResult:
    """Move a `queued` call not yet dispatched back to `scheduled` until `due`
    (reschedule_queued.lua); outcome `conflict` (with the status) otherwise."""
    job_id = encode_message(DIAL_QUEUE, DISPATCH_ACTOR, call_id).message_id
    reply = await store.run(
        RescheduleQueued(
            event_keys=event_keys(store, call_id),
            due=store.keys.scheduled_due(),
            due_ms=due.at_ms,
            reason=due.reason,
            job_id=job_id,
            event=apply_args(store, scheduled_event(due), now_ms(), call_id).informational(),
        )
    )
    return ApplyResult(outcome=reply[0], sequence=int(reply[1]), status=reply[2])


async def cancel_call_event(store: Store, call_id: str, event: EventSpec) -> ApplyResult:
    """Apply a cancel `event` and, when it applied, take the call out of the due set in
    the same step (cancel_call.lua)."""
    args = apply_args(store, event, now_ms(), call_id)
    reply = await store.run(
        CancelCall(
            event_keys=event_keys(store, call_id), due=store.keys.scheduled_due(), event=args
        )
    )
    return apply_result(reply, args.new_status)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledCallKeys:
    """What the claim of scheduled calls writes beyond a schedule's queue (claim_scheduled.lua):
    each call's `call.queued`, with its relay message, and its deadline. The call's keys
    are templates in `@@CALL@@`, named through `Keys` so the layout stays in one place."""

    deadlines: str
    relay_msgs: str
    relay_queue: str
    retention_s: int
    relay_template: str
    call_template: str
    events_template: str
    eids_template: str
    delivery_template: str
    relay_active_template: str

    @classmethod
    def of(cls, keys: Keys, relay: QueueKeys, retention_s: int) -> ScheduledCallKeys:
        call = "@@CALL@@"
        return cls(
            deadlines=keys.deadlines(),
            relay_msgs=relay.messages,
            relay_queue=relay.ids,
            retention_s=retention_s,
            relay_template=message_template(RELAY_QUEUE, RELAY_ACTOR),
            call_template=keys.call(call),
            events_template=keys.events(call),
            eids_template=keys.event_ids(call),
            delivery_template=keys.delivery(call),
            relay_active_template=keys.relay_active(call),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimScheduled(ScriptCall):
    NAME = "claim_scheduled"
    due: Key
    dial_msgs: Key
    dial_queue: Key
    deadlines: Key
    relay_msgs: Key
    relay_queue: Key
    now_ms: int
    limit: int
    body_template: str  # @@CALL@@, @@MSG@@
    msg_id_prefix: str
    timestamp: str  # the claim's ISO time, `call.queued`'s
    retention_s: int
    relay_template: str
    call_template: str
    events_template: str
    eids_template: str
    delivery_template: str
    relay_active_template: str
