"""The call record (`keys.call`): a Redis hash, read and written as `CallRecord`.

Invariant: this module is the one conversion between the hash and typed values:
`CallRecord.from_hash` and `to_hash` for the record, `CallUpdate.to_fields` for what an
event writes on a call after its accept. Field names are the ones the Lua scripts read and
write (lib/deadline.lua, lib/apply_event.lua): they do not change, so no stored call needs a
migration. Values that do not parse follow `api.store.records` (`read_call`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast, get_args

from pydantic import ValidationError
from pydantic_core import to_json

from agent_runtime.contract import TERMINAL_STATUSES, AgentConfig, CallStatus
from api.settings import Settings
from api.store.records import HashFields, UnreadableRecord, readable

CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)


@dataclass(frozen=True, slots=True)
class CallBudgets:
    """How long each state of the call may last, fixed at accept time so a call keeps its
    deadlines when the settings change (lib/deadline.lua reads them from the record)."""

    dial_mode: str
    dispatch_timeout_s: int
    agent_ready_timeout_s: int
    answer_grace_s: int
    deadline_margin_s: int
    # How long the call may wait for its trunk's or workspace's limits (api.store.pacing).
    max_waiting_s: int
    # Its answered time is billed in steps of this many seconds (`settle_call`, lib/settle.lua).
    billing_increment_s: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> CallBudgets:
        return cls(
            dial_mode=settings.dial_mode,
            dispatch_timeout_s=settings.dispatch_timeout_seconds,
            agent_ready_timeout_s=settings.agent_ready_timeout_seconds,
            answer_grace_s=settings.agent_answer_grace_seconds,
            deadline_margin_s=settings.deadline_margin_seconds,
            max_waiting_s=settings.max_waiting_seconds,
            billing_increment_s=60 if settings.billing_rounding == "minute" else 1,
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A stored call. The first block is written at accept time and present in every call
    record; the rest is optional (`None` when absent): budgets (absent in calls accepted
    before they existed; the Lua scripts read them as 0), then what the call's steps record.
    """

    id: str
    workspace_id: str
    agent_id: str
    to: str
    sip_trunk_id: str
    room_name: str
    status: CallStatus
    job_id: str
    max_duration_seconds: int
    ring_timeout_seconds: int
    created_at: int  # ms, like every time of the record
    updated_at: int
    seq: int  # the last event's sequence number
    # The agent as it was when the call was accepted (None: the snapshot does not parse).
    agent: AgentConfig | None
    dynamic_variables: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    from_number: str | None = None  # hash field `from`
    callback_url: str | None = None
    campaign_id: str | None = None
    idempotency_key: str | None = None
    dial_mode: str | None = None
    dispatch_timeout_s: int | None = None
    agent_ready_timeout_s: int | None = None
    answer_grace_s: int | None = None
    deadline_margin_s: int | None = None
    max_waiting_s: int | None = None
    # When the call entered each status it went through (hash fields `ts_<status>`).
    transitions: dict[str, int] = field(default_factory=dict)
    event_bytes: int | None = None
    # The dial step's run that took `dialing` (only it may look into an unknown outcome).
    dial_owner: str | None = None
    agent_ready_at: int | None = None
    sip_call_id: str | None = None
    sip_participant_id: str | None = None
    dial_sent_at: int | None = None  # when the dial request left the worker
    sip_status_code: int | None = None
    sip_status: str | None = None
    end_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    duration_seconds: float | None = None  # as the agent reported it
    ended_at: int | None = None
    # A call placed for later: when it is (or was) due, and why it waits (ScheduledReason).
    scheduled_at: int | None = None
    scheduled_reason: str | None = None
    # The call's window, as `api.services.call_windows.window_to_json` writes it.
    call_window: str | None = None
    # A `queued` call held by a limit: which (WaitingReason) and since when (ms); written
    # and cleared by the admission scripts (admit.lua, pace.lua).
    waiting_for: str | None = None
    waiting_since: int | None = None
    # Minutes (lib/reservation.lua): the billing step, the seconds a metered call holds
    # from its workspace's balance, and what it was billed when it ended.
    billing_increment_s: int | None = None
    reserved_s: int | None = None
    billed_s: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_hash(cls, raw: dict[str, str], key: str = "call") -> CallRecord:
        """The record in `raw` (an HGETALL reply); `UnreadableRecord` when a field of the
        first block is missing or does not parse."""
        read = HashFields(raw, key)
        status = read.text("status")
        if status not in CALL_STATUSES:
            raise UnreadableRecord(f"status {status[:40]!r} is not a call status")
        return cls(
            id=read.text("id"),
            workspace_id=read.text("workspace_id"),
            agent_id=read.text("agent_id"),
            to=read.text("to"),
            sip_trunk_id=read.text("sip_trunk_id"),
            room_name=read.text("room_name"),
            status=cast(CallStatus, status),
            job_id=read.text("job_id"),
            max_duration_seconds=read.integer("max_duration_seconds"),
            ring_timeout_seconds=read.integer("ring_timeout_seconds"),
            created_at=read.integer("created_at"),
            updated_at=read.integer("updated_at"),
            seq=read.integer("seq"),
            agent=_agent_snapshot(read),
            dynamic_variables=read.json_object("dynamic_variables"),
            metadata=read.json_object("metadata"),
            from_number=read.optional_text("from"),
            callback_url=read.optional_text("callback_url"),
            campaign_id=read.optional_text("campaign_id"),
            idempotency_key=read.optional_text("idempotency_key"),
            dial_mode=read.optional_text("dial_mode"),
            dispatch_timeout_s=read.optional_integer("dispatch_timeout_s"),
            agent_ready_timeout_s=read.optional_integer("agent_ready_timeout_s"),
            answer_grace_s=read.optional_integer("answer_grace_s"),
            deadline_margin_s=read.optional_integer("deadline_margin_s"),
            max_waiting_s=read.optional_integer("max_waiting_s"),
            transitions=_transitions(read),
            event_bytes=read.optional_integer("event_bytes"),
            dial_owner=read.optional_text("dial_owner"),
            agent_ready_at=read.optional_integer("agent_ready_at"),
            sip_call_id=read.optional_text("sip_call_id"),
            sip_participant_id=read.optional_text("sip_participant_id"),
            dial_sent_at=read.optional_integer("dial_sent_at"),
            sip_status_code=read.optional_integer("sip_status_code"),
            sip_status=read.optional_text("sip_status"),
            end_reason=read.optional_text("end_reason"),
            error_code=read.optional_text("error_code"),
            error_message=read.optional_text("error_message"),
            duration_seconds=read.optional_number("duration_seconds"),
            ended_at=read.optional_integer("ended_at"),
            scheduled_at=read.optional_integer("scheduled_at"),
            scheduled_reason=read.optional_text("scheduled_reason"),
            call_window=read.optional_text("call_window"),
            waiting_for=read.optional_text("waiting_for"),
            waiting_since=read.optional_integer("waiting_since"),
            billing_increment_s=read.optional_integer("billing_increment_s"),
            reserved_s=read.optional_integer("reserved_s"),
            billed_s=read.optional_integer("billed_s"),
        )

    def to_hash(self) -> dict[str, str]:
        """The hash fields of this record; absent (None) fields are left out."""
        values: dict[str, object | None] = {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "agent_id": self.agent_id,
            "to": self.to,
            "sip_trunk_id": self.sip_trunk_id,
            "room_name": self.room_name,
            "status": self.status,
            "job_id": self.job_id,
            "max_duration_seconds": self.max_duration_seconds,
            "ring_timeout_seconds": self.ring_timeout_seconds,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "seq": self.seq,
            "agent": self.agent.model_dump_json() if self.agent is not None else None,
            "dynamic_variables": to_json(self.dynamic_variables).decode(),
            "metadata": to_json(self.metadata).decode(),
            "from": self.from_number,
            "callback_url": self.callback_url,
            "campaign_id": self.campaign_id,
            "idempotency_key": self.idempotency_key,
            "dial_mode": self.dial_mode,
            "dispatch_timeout_s": self.dispatch_timeout_s,
            "agent_ready_timeout_s": self.agent_ready_timeout_s,
            "answer_grace_s": self.answer_grace_s,
            "deadline_margin_s": self.deadline_margin_s,
            "max_waiting_s": self.max_waiting_s,
            **{f"ts_{status}": ms for status, ms in self.transitions.items()},
            "event_bytes": self.event_bytes,
            "dial_owner": self.dial_owner,
            "agent_ready_at": self.agent_ready_at,
            "sip_call_id": self.sip_call_id,
            "sip_participant_id": self.sip_participant_id,
            "dial_sent_at": self.dial_sent_at,
            "sip_status_code": self.sip_status_code,
            "sip_status": self.sip_status,
            "end_reason": self.end_reason,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "duration_seconds": self.duration_seconds,
            "ended_at": self.ended_at,
            "scheduled_at": self.scheduled_at,
            "scheduled_reason": self.scheduled_reason,
            "call_window": self.call_window,
            "waiting_for": self.waiting_for,
            "waiting_since": self.waiting_since,
            "billing_increment_s": self.billing_increment_s,
            "reserved_s": self.reserved_s,
            "billed_s": self.billed_s,
        }
        return {name: str(value) for name, value in values.items() if value is not None}


def read_call(raw: dict[str, str], call_id: str) -> CallRecord | None:
    """The call in an HGETALL reply; None when it is gone or unreadable (`api.store.records`)."""
    if not raw:
        return None
    key = f"call {call_id}"
    return readable(lambda: CallRecord.from_hash(raw, key), key)


def _agent_snapshot(read: HashFields) -> AgentConfig | None:
    raw = read.optional_text("agent")
    if raw is None:
        return None
    try:
        return AgentConfig.model_validate_json(raw)
    except ValidationError:
        read.garbled("agent", raw, "an agent snapshot")
        return None


def _transitions(read: HashFields) -> dict[str, int]:
    found = {status: read.optional_integer(f"ts_{status}") for status in CALL_STATUSES}
    return {status: ms for status, ms in found.items() if ms is not None}


# Texts an update writes are cut to this length: agents fill some of them (`event_fields`),
# and no call holds unbounded text from outside.
MAX_UPDATE_TEXT = 500


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """What an event writes on its call when it applies (`EventSpec.update`, written by the
    apply script in the same step): the fields a call's steps record after its accept, under
    the names `CallRecord` reads. `None` (and an empty text) leaves a field as it is."""

    dial_owner: str | None = None
    agent_ready_at: int | None = None
    end_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    sip_status_code: int | None = None
    sip_status: str | None = None
    duration_seconds: float | None = None

    def to_fields(self) -> dict[str, str]:
        """The hash fields this update writes."""
        texts = {
            "dial_owner": self.dial_owner,
            "end_reason": self.end_reason,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "sip_status": self.sip_status,
        }
        numbers = {
            "agent_ready_at": self.agent_ready_at,
            "sip_status_code": self.sip_status_code,
            "duration_seconds": self.duration_seconds,
        }
        fields = {name: text[:MAX_UPDATE_TEXT] for name, text in texts.items() if text}
        return fields | {name: str(n) for name, n in numbers.items() if n is not None}


@dataclass(frozen=True, slots=True)
class CallDraft:
    """Everything the API decided about a call before it is stored."""

    id: str
    workspace_id: str
    agent_id: str
    to: str
    from_number: str | None
    sip_trunk_id: str
    room_name: str
    callback_url: str | None
    dynamic_variables: dict[str, Any]
    metadata: dict[str, Any]
    campaign_id: str | None
    max_duration_seconds: int
    ring_timeout_seconds: int
    agent: AgentConfig
    budgets: CallBudgets
    idempotency_key: str | None = None
    call_window: str | None = None  # stored form (`call_windows.window_to_json`)

    def record(self, now_ms: int, job_id: str) -> CallRecord:
        """The call as accepted at `now_ms`: `queued`, its dispatch message `job_id`."""
        budgets = self.budgets
        return CallRecord(
            id=self.id,
            workspace_id=self.workspace_id,
            agent_id=self.agent_id,
            to=self.to,
            sip_trunk_id=self.sip_trunk_id,
            room_name=self.room_name,
            status="queued",
            job_id=job_id,
            max_duration_seconds=self.max_duration_seconds,
            ring_timeout_seconds=self.ring_timeout_seconds,
            created_at=now_ms,
            updated_at=now_ms,
            seq=0,
            agent=self.agent,
            dynamic_variables=self.dynamic_variables,
            metadata=self.metadata,
            from_number=self.from_number,
            callback_url=self.callback_url,
            campaign_id=self.campaign_id,
            idempotency_key=self.idempotency_key,
            dial_mode=budgets.dial_mode,
            dispatch_timeout_s=budgets.dispatch_timeout_s,
            agent_ready_timeout_s=budgets.agent_ready_timeout_s,
            answer_grace_s=budgets.answer_grace_s,
            deadline_margin_s=budgets.deadline_margin_s,
            max_waiting_s=budgets.max_waiting_s,
            billing_increment_s=budgets.billing_increment_s,
            transitions={"queued": now_ms},
            call_window=self.call_window,
        )
