"""Scheduled calls in the store: accept for later, move, cancel, and the due claim's
arguments (the scripts are `api.store.lua_schedule`, whose docstring states the invariant:
a call is `scheduled` exactly while it is in the due set, without a dispatch message).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import to_json

from agent_runtime.contract import ScheduledReason
from api.store.base import Store
from api.store.call_record import CallDraft
from api.store.calls import IDEMPOTENCY_TTL_SECONDS, AcceptOutcome, accept_refusal
from api.store.clock import now_ms
from api.store.events import (
    ApplyResult,
    EventQuota,
    EventSpec,
    apply_args,
    apply_result,
    event_keys,
    iso_timestamp,
)
from api.store.keys import Keys
from api.store.lua_billing import RESERVE_SECONDS
from api.store.messages import (
    DIAL_QUEUE,
    DISPATCH_ACTOR,
    RELAY_ACTOR,
    RELAY_QUEUE,
    encode_message,
    message_template,
)


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


def _informational(args: list[Any]) -> list[Any]:
    """apply_event's arguments with no status change: the script set the status itself."""
    return [args[0], "", *args[2:]]


async def accept_scheduled_call(
    store: Store,
    draft: CallDraft,
    response: dict[str, Any],
    request_hash: str | None,
    due: Due,
) -> AcceptOutcome:
    """Store the call `scheduled` until `due`, its idempotency record and `call.scheduled`,
    in one script (`lua_schedule.ACCEPT_SCHEDULED`), which reserves its first minute like
    `calls.accept_call` (refused: `balance_short`). Its dispatch message is not written
    now: its id is (`job_id`), so the claim writes exactly that message later."""
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
    result = await store.accept_scheduled_script(
        keys=[
            *event_keys(store, draft.id),
            keys.calls(draft.workspace_id),
            keys.room(draft.room_name),
            idem_key if draft.idempotency_key else "",
            keys.scheduled_due(),
            keys.balance(draft.workspace_id),
        ],
        args=[
            idem_value,
            IDEMPOTENCY_TTL_SECONDS,
            now,
            store.retention_seconds,
            to_json(record.to_hash()).decode(),
            due.at_ms,
            RESERVE_SECONDS,
            *_informational(apply_args(store, event, now, draft.id if draft.callback_url else "")),
        ],
    )
    if result[0] != "created":
        return accept_refusal(result, draft.id)
    return AcceptOutcome(created=True, previous={"response": response})


async def move_scheduled_call(store: Store, call_id: str, due: Due) -> ApplyResult:
    """Give a still `scheduled` call a new due time; outcome `conflict` (with the status)
    once it is not scheduled any more, `missing` when it is gone."""
    # Each move is an event on the call: bounded, so a client looping PATCH cannot grow it.
    event = dataclasses.replace(scheduled_event(due), quota=MOVE_QUOTA)
    args = _informational(apply_args(store, event, now_ms(), call_id))
    reply = await store.move_scheduled_script(
        keys=[*event_keys(store, call_id), store.keys.scheduled_due()],
        args=[due.at_ms, due.reason, *args],
    )
    return ApplyResult(outcome=reply[0], sequence=int(reply[1]), status=reply[2])


async def reschedule_queued_call(store: Store, call_id: str, due: Due) -> ApplyResult:
    """Move a `queued` call not yet dispatched back to `scheduled` until `due`
    (`lua_schedule.RESCHEDULE_QUEUED`); outcome `conflict` (with the status) otherwise."""
    job_id = encode_message(DIAL_QUEUE, DISPATCH_ACTOR, call_id).message_id
    args = _informational(apply_args(store, scheduled_event(due), now_ms(), call_id))
    reply = await store.reschedule_queued_script(
        keys=[*event_keys(store, call_id), store.keys.scheduled_due()],
        args=[due.at_ms, due.reason, job_id, *args],
    )
    return ApplyResult(outcome=reply[0], sequence=int(reply[1]), status=reply[2])


async def call_window_of(store: Store, call_id: str) -> tuple[str, str, int] | None:
    """A queued call's window (stored form), destination and agent-ready timeout (s);
    None when the call has no window or is not `queued` (one HMGET: the dispatcher asks
    for every call)."""
    fields = ["call_window", "to", "status", "agent_ready_timeout_s"]
    # `store.redis` decodes every reply (open_store)
    found = cast(list[str | None], await store.redis.hmget(store.keys.call(call_id), fields))
    window, to, status, ready = found
    if not window or not to or status != "queued":
        return None
    return window, to, int(ready or 0)


async def cancel_call_event(store: Store, call_id: str, event: EventSpec) -> ApplyResult:
    """Apply a cancel `event` and, when it applied, take the call out of the due set in
    the same step (`lua_schedule.CANCEL_CALL`)."""
    args = apply_args(store, event, now_ms(), call_id)
    reply = await store.cancel_call_script(
        keys=[*event_keys(store, call_id), store.keys.scheduled_due()], args=args
    )
    return apply_result(reply, args[1])


def claim_arguments(keys: Keys) -> tuple[str, ...]:
    """The claim script's fixed arguments after the event timestamp (see
    `lua_schedule.CLAIM_SCHEDULED`): the relay message template and the call's key
    templates, named through `Keys` so the layout stays in one place."""
    call = "@@CALL@@"
    return (
        message_template(RELAY_QUEUE, RELAY_ACTOR),
        keys.call(call),
        keys.events(call),
        keys.event_ids(call),
        keys.delivery(call),
        keys.relay_active(call),
    )
