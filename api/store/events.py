"""The one function that applies an event to a call.

Dispatcher transitions, LiveKit webhooks and agent events all end here: an atomic script
moves the state forward (never backwards, terminal states final), appends the event with
the call's next sequence number and schedules callback delivery.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Annotated, Any, Literal, get_args

from pydantic_core import to_json

from agent_runtime.contract import TERMINAL_STATUSES, CallStatus, EndedStatus, EndReason
from api.store.base import Store
from api.store.call_record import CallUpdate
from api.store.call_workspace import CallWithWorkspace, call_with_workspace
from api.store.clock import now_ms
from api.store.messages import DIAL_ACTOR, DIAL_QUEUE, RELAY_ACTOR, RELAY_QUEUE, encode_message
from api.store.scripts import KEYS, Key, ScriptCall
from api.store.uuids import uuid4_hex

# The status an event moves the call to; `None` marks an informational event. The call
# fields an agent's event writes with it are in `api.store.event_fields.agent_update`.
EVENT_STATUS: dict[str, CallStatus | None] = {
    "call.scheduled": "scheduled",  # written with the record, or by a window's re-check
    "call.queued": None,  # written with the record itself, or by the due call's claim
    "call.waiting": None,  # data.reason: a WaitingReason (pacing)
    "call.dispatching": "dispatching",
    "call.waiting_for_agent": "waiting_for_agent",
    "call.dialing": "dialing",
    "call.ringing": "ringing",
    "call.answered": "in_progress",
    "call.failed": "failed",
    "call.canceled": "canceled",
    "call.ended": "completed",  # or data.status: no_answer | busy | failed
    "call.voicemail": None,
    "call.opted_out": None,  # the call's number joined the do-not-call list (agent_events)
    "call.transcript": None,
    "agent.started": None,
    "agent.ready": None,
    "agent.job_started": None,
    "agent.job_ended": None,
}
_ENDED_STATUSES = frozenset(get_args(EndedStatus))
_END_REASONS = frozenset(get_args(EndReason))

# `ended` and `over_quota` refuse an event held to an `EventQuota` (agent events).
ApplyOutcome = Literal[
    "applied", "duplicate", "stale", "conflict", "missing", "ended", "over_quota"
]


def status_for(event_type: str, data: dict[str, Any]) -> str | None:
    """The status `event_type` moves a call to; ValueError for an event that breaks the
    vocabulary (a `failed` end is `call.failed`, see `contract.outcome_event_type`)."""
    if event_type in ("call.ended", "call.failed"):
        reason = data.get("reason")
        if reason is not None and reason not in _END_REASONS:
            raise ValueError(f"{event_type} reason {reason!r} is not one of the end reasons")
    if event_type == "call.ended":
        status = data.get("status") or "completed"
        if status not in _ENDED_STATUSES or status == "failed":
            allowed = sorted(_ENDED_STATUSES - {"failed"})
            raise ValueError(f"call.ended status must be one of {allowed} (failed: call.failed)")
        return status
    if event_type not in EVENT_STATUS:
        raise ValueError(f"unknown event type {event_type!r}")
    return EVENT_STATUS[event_type]


@dataclass(frozen=True, slots=True)
class EventQuota:
    """What an informational event from outside (an agent) may add to a call: refused
    (`over_quota`) past `max_events` events or `max_bytes` stored bytes on the call, and
    (`ended`) once the call ended more than `after_end_ms` ago. Checked in the apply script,
    so concurrent posts cannot overshoot."""

    max_events: int
    max_bytes: int
    after_end_ms: int


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=uuid4_hex)
    timestamp: float | None = None
    # Only apply when the call is in this status (compare-and-set).
    expected_status: str | None = None
    # What the event writes on the call when it applies.
    call_update: CallUpdate = field(default_factory=CallUpdate)
    # None: not limited (Outdial's own events).
    quota: EventQuota | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcome: ApplyOutcome
    sequence: int
    status: str
    # agent.ready only: the call's dial step was queued by this event
    dial: bool = False
    # This event moved the call to its terminal `status` (its callers count the end).
    ended: bool = False
    # The seconds the call was billed, when this event ended it (`settle_call`, lib/settle.lua).
    billed_seconds: int = 0

    @property
    def applied(self) -> bool:
        return self.outcome == "applied"


def iso_timestamp(unix_seconds: float) -> str:
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventKeys:
    """apply_event's keys (lib/apply_event.lua), in every script that applies an event."""

    call: str
    events: str
    eids: str
    delivery: str
    relay_active: str
    relay_msgs: str
    relay_queue: str
    deadlines: str

    def flat(self) -> list[str]:
        # The field order is KEYS' order (lib/event_argv.lua's `event_keys`).
        return list(_EVENT_KEYS(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class EventArgs:
    """apply_event's arguments (lib/event_argv.lua's `event_args`), last in its scripts'."""

    event_id: str
    new_status: str  # '' = informational
    expected_status: str  # '' = any
    head: str  # the script writes `<head><n>,"status":"<s>"<tail>`
    tail: str
    now_ms: int
    retention_s: int
    relay_msg_id: str  # the relay message enqueued when none is in flight
    relay_msg_body: str
    max_events: int  # the quota of an informational event (0, 0, '': none)
    max_bytes: int
    after_end_ms: int | Literal[""]
    # Written on the call when the event applies ('' deletes the field).
    fields: tuple[tuple[str, str], ...]

    def informational(self) -> EventArgs:
        """The same event with no status change (its script sets the status itself)."""
        return dataclasses.replace(self, new_status="")

    def flat(self) -> list[Any]:
        # The field order is ARGV's (lib/event_argv.lua's `event_args`), the pairs last.
        pairs = self.fields
        return [*_EVENT_ARGS_HEAD(self), len(pairs), *(item for pair in pairs for item in pair)]


# Read once per event on the hot path: the fields in order, as one getter each.
_EVENT_KEYS = attrgetter(*(key.name for key in dataclasses.fields(EventKeys)))
_EVENT_ARGS_HEAD = attrgetter(*(arg.name for arg in dataclasses.fields(EventArgs)[:-1]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyEvent(ScriptCall):
    NAME = "apply_event"
    event_keys: Annotated[EventKeys, KEYS]
    event: EventArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentReady(ScriptCall):
    NAME = "agent_ready"
    event_keys: Annotated[EventKeys, KEYS]
    dial_msgs: Key
    dial_queue: Key
    dial_msg_id: str
    dial_msg_body: str
    event: EventArgs


def event_keys(store: Store, call_id: str) -> EventKeys:
    keys = store.keys
    return EventKeys(
        call=keys.call(call_id),
        events=keys.events(call_id),
        eids=keys.event_ids(call_id),
        delivery=keys.delivery(call_id),
        relay_active=keys.relay_active(call_id),
        relay_msgs=store.relay_queue.messages,
        relay_queue=store.relay_queue.ids,
        deadlines=keys.deadlines(),
    )


def apply_args(store: Store, event: EventSpec, now_ms: int, call_id: str = "") -> EventArgs:
    """The apply_event script's arguments (see lib/apply_event.lua)."""
    new_status = status_for(event.type, event.data) or ""
    timestamp = event.timestamp if event.timestamp is not None else now_ms / 1000
    head = to_json({"id": event.id, "type": event.type}).decode()
    tail = to_json({"timestamp": iso_timestamp(timestamp), "data": event.data}).decode()
    relay = encode_message(RELAY_QUEUE, RELAY_ACTOR, call_id) if call_id else None
    quota = event.quota
    return EventArgs(
        event_id=event.id,
        new_status=new_status,
        expected_status=event.expected_status or "",
        head=head[:-1] + ',"sequence":',
        tail="," + tail[1:],
        now_ms=now_ms,
        retention_s=store.retention_seconds,
        relay_msg_id=relay.message_id if relay else "",
        relay_msg_body=relay.body if relay else "",
        max_events=quota.max_events if quota else 0,
        max_bytes=quota.max_bytes if quota else 0,
        after_end_ms=quota.after_end_ms if quota else "",
        fields=tuple(event.call_update.to_fields().items()),
    )


def apply_result(reply: list[Any], new_status: str) -> ApplyResult:
    """The result of an apply script's reply (lib/apply_event.lua: outcome, sequence,
    status and, applied, the seconds billed)."""
    outcome, status = reply[0], reply[2]
    ended = outcome == "applied" and bool(new_status) and status in TERMINAL_STATUSES
    billed = int(reply[3]) if len(reply) > 3 else 0
    return ApplyResult(
        outcome=outcome, sequence=int(reply[1]), status=status, ended=ended, billed_seconds=billed
    )


async def apply_event(store: Store, call_id: str, event: EventSpec) -> ApplyResult:
    args = apply_args(store, event, now_ms(), call_id)
    reply = await store.run(ApplyEvent(event_keys=event_keys(store, call_id), event=args))
    return apply_result(reply, args.new_status)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyThenReadWorkspace(ScriptCall):
    NAME = "apply_then_read_workspace"
    event_keys: Annotated[EventKeys, KEYS]
    workspace_prefix: str  # the workspace's key is this and its id
    event: EventArgs


async def apply_event_then_read_workspace(
    store: Store, call_id: str, event: EventSpec
) -> tuple[ApplyResult, CallWithWorkspace]:
    """`apply_event`, then the call with its workspace's state (`api.store.call_workspace`),
    in one script (apply_then_read_workspace.lua): the dispatcher learns whether the
    workspace is disabled as it marks the call."""
    args = apply_args(store, event, now_ms(), call_id)
    reply, *found = await store.run(
        ApplyThenReadWorkspace(
            event_keys=event_keys(store, call_id),
            workspace_prefix=store.keys.workspace(""),
            event=args,
        )
    )
    return apply_result(reply, args.new_status), call_with_workspace(found, call_id)


async def mark_agent_ready(store: Store, call_id: str, event: EventSpec) -> ApplyResult:
    """Record the agent's readiness once; a call waiting for it gets its dial step queued
    in the same step (agent_ready.lua). The outcome is `dial` when that happened."""
    now = now_ms()
    ready = EventSpec(
        event.type,
        event.data,
        event.id,
        event.timestamp,
        call_update=CallUpdate(agent_ready_at=now),
        quota=event.quota,
    )
    # The dial step's token (its second argument) names this message as the dial's owner.
    dial = encode_message(DIAL_QUEUE, DIAL_ACTOR, call_id, uuid4_hex())
    reply = await store.run(
        AgentReady(
            event_keys=event_keys(store, call_id),
            dial_msgs=store.dial_queue.messages,
            dial_queue=store.dial_queue.ids,
            dial_msg_id=dial.message_id,
            dial_msg_body=dial.body,
            event=apply_args(store, ready, now, call_id),
        )
    )
    outcome: ApplyOutcome = "applied" if reply[0] == "dial" else reply[0]
    return ApplyResult(
        outcome=outcome, sequence=int(reply[1]), status=reply[2], dial=reply[0] == "dial"
    )


async def list_events(store: Store, call_id: str) -> list[dict[str, Any]]:
    raw = await store.redis.lrange(store.keys.events(call_id), 0, -1)
    return [json.loads(item) for item in raw]


async def list_events_with_delivery(
    store: Store, call_id: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The call's events in order and its delivery hash (sequence -> state JSON, the
    cursor, `redelivery:{seq}`), in one round trip."""
    pipe = store.redis.pipeline(transaction=False)
    pipe.lrange(store.keys.events(call_id), 0, -1)
    pipe.hgetall(store.keys.delivery(call_id))
    raw_events, delivery = await pipe.execute()
    return [json.loads(item) for item in raw_events], delivery


async def event_sequence(store: Store, call_id: str, event_id: str) -> int | None:
    """The sequence of the call's event `event_id` (None: no such event)."""
    sequence = await store.redis.hget(store.keys.event_ids(call_id), event_id)
    return int(sequence) if sequence else None
