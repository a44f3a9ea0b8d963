"""The call record (`keys.call`): a Redis hash, read and written as `CallRecord`.

Invariant: this module is the one conversion between the hash and typed values, derived
from the description of each field on `CallRecord` (`api.store.call_fields`):
`CallRecord.from_hash` and `to_hash` for the record, `CallUpdate.to_fields` for what an
event writes on a call after its accept, `CallDraft.record` for the accept. Hash field
names are the ones the Lua scripts read and write (lib/deadline.lua, lib/apply_event.lua):
they do not change, so no stored call needs a migration. Values that do not parse follow
`api.store.records` (`read_call`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.contract import TERMINAL_STATUSES, AgentConfig, CallStatus
from api.settings import Settings
from api.store.call_fields import (
    AGENT,
    INTEGER,
    JSON_OBJECT,
    MS,
    MS_PER_STATUS,
    NUMBER,
    STATUS,
    TEXT,
    describe,
    stored,
)
from api.store.records import HashFields, readable


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
    """A stored call, each field described where it is declared (`call_fields.stored`:
    codec, hash field when not its name, whether `CallView` shows it). The first block is
    written at accept time and present in every call record; the rest is optional (`None`
    when absent): budgets (absent in calls accepted before they existed; the Lua scripts
    read them as 0), then what the call's steps record.
    """

    id: str = field(metadata=stored(TEXT, shown="call_id"))
    workspace_id: str = field(metadata=stored(TEXT))
    agent_id: str = field(metadata=stored(TEXT, shown=True))
    to: str = field(metadata=stored(TEXT, shown=True))
    sip_trunk_id: str = field(metadata=stored(TEXT, shown=True, blank_shown_as_null=True))
    room_name: str = field(metadata=stored(TEXT, shown=True))
    status: CallStatus = field(metadata=stored(STATUS, shown=True))
    job_id: str = field(metadata=stored(TEXT, shown=True, blank_shown_as_null=True))
    max_duration_seconds: int = field(metadata=stored(INTEGER, shown=True))
    ring_timeout_seconds: int = field(metadata=stored(INTEGER, shown=True))
    created_at: int = field(metadata=stored(MS, shown=True))  # ms, like every time of the record
    updated_at: int = field(metadata=stored(MS, shown=True))
    seq: int = field(metadata=stored(INTEGER))  # the last event's sequence number
    # The agent as it was when the call was accepted (None: the snapshot does not parse).
    agent: AgentConfig | None = field(metadata=stored(AGENT))
    dynamic_variables: dict[str, Any] = field(
        default_factory=dict, metadata=stored(JSON_OBJECT, shown=True)
    )
    metadata: dict[str, Any] = field(default_factory=dict, metadata=stored(JSON_OBJECT, shown=True))
    from_number: str | None = field(
        default=None, metadata=stored(TEXT, hash_name="from", shown=True)
    )
    callback_url: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    campaign_id: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    idempotency_key: str | None = field(default=None, metadata=stored(TEXT))
    dial_mode: str | None = field(default=None, metadata=stored(TEXT))
    dispatch_timeout_s: int | None = field(default=None, metadata=stored(INTEGER))
    agent_ready_timeout_s: int | None = field(default=None, metadata=stored(INTEGER))
    answer_grace_s: int | None = field(default=None, metadata=stored(INTEGER))
    deadline_margin_s: int | None = field(default=None, metadata=stored(INTEGER))
    max_waiting_s: int | None = field(default=None, metadata=stored(INTEGER))
    # When the call entered each status it went through (hash fields `ts_<status>`).
    transitions: dict[str, int] = field(
        default_factory=dict, metadata=stored(MS_PER_STATUS, hash_name="ts_", shown=True)
    )
    event_bytes: int | None = field(default=None, metadata=stored(INTEGER))
    # The dial step's run that took `dialing` (only it may look into an unknown outcome).
    dial_owner: str | None = field(default=None, metadata=stored(TEXT))
    agent_ready_at: int | None = field(default=None, metadata=stored(MS))
    sip_call_id: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    sip_participant_id: str | None = field(default=None, metadata=stored(TEXT))
    # When the dial request left the worker.
    dial_sent_at: int | None = field(default=None, metadata=stored(MS))
    sip_status_code: int | None = field(default=None, metadata=stored(INTEGER, shown=True))
    sip_status: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    end_reason: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    error_code: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    error_message: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    # As the agent reported it.
    duration_seconds: float | None = field(default=None, metadata=stored(NUMBER))
    ended_at: int | None = field(default=None, metadata=stored(MS, shown=True))
    # A call placed for later: when it is (or was) due, and why it waits (ScheduledReason).
    scheduled_at: int | None = field(default=None, metadata=stored(MS, shown=True))
    scheduled_reason: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    # The call's window, as `api.services.call_windows.window_to_json` writes it.
    call_window: str | None = field(default=None, metadata=stored(TEXT))
    # A `queued` call held by a limit: which (WaitingReason) and since when (ms); written
    # and cleared by the admission scripts (admit.lua, pace.lua).
    waiting_for: str | None = field(default=None, metadata=stored(TEXT, shown=True))
    waiting_since: int | None = field(default=None, metadata=stored(MS, shown=True))
    # Minutes (lib/reservation.lua): the billing step, the seconds a metered call holds
    # from its workspace's balance and that balance's generation then (`reserved_gen`,
    # `keys.balance_generation`), and what it was billed when it ended.
    billing_increment_s: int | None = field(default=None, metadata=stored(INTEGER))
    reserved_s: int | None = field(default=None, metadata=stored(INTEGER))
    reserved_gen: int | None = field(default=None, metadata=stored(INTEGER))
    billed_s: int | None = field(default=None, metadata=stored(INTEGER))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_hash(cls, raw: dict[str, str], key: str = "call") -> CallRecord:
        """The record in `raw` (an HGETALL reply); `UnreadableRecord` when a field of the
        first block is missing or does not parse."""
        read = HashFields(raw, key)
        return cls(**{f.name: f.read(read, f.hash_name) for f in CALL_FIELDS})

    def to_hash(self) -> dict[str, str]:
        """The hash fields of this record; absent (None) fields are left out."""
        fields: dict[str, str] = {}
        for name, hash_name, write in _SINGLE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[hash_name] = write(value)
        for name, prefix, write in _PER_STATUS_FIELDS:
            for status, value in getattr(self, name).items():
                fields[prefix + status] = write(value)
        return fields


# The description of the call record, and what `to_hash` writes from it.
CALL_FIELDS = describe(CallRecord)
_SINGLE_FIELDS = tuple(
    (f.name, f.hash_name, f.codec.write) for f in CALL_FIELDS if not f.codec.per_status
)
_PER_STATUS_FIELDS = tuple(
    (f.name, f.hash_name, f.codec.write) for f in CALL_FIELDS if f.codec.per_status
)
CALL_FIELD = {f.name: f for f in CALL_FIELDS}


def read_call(raw: dict[str, str], call_id: str) -> CallRecord | None:
    """The call in an HGETALL reply; None when it is gone or unreadable (`api.store.records`)."""
    if not raw:
        return None
    key = f"call {call_id}"
    return readable(lambda: CallRecord.from_hash(raw, key), key)


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
        """The hash fields this update writes (under the record's names, `CALL_FIELD`)."""
        fields: dict[str, str] = {}
        for described in _UPDATED_FIELDS:
            value = getattr(self, described.name)
            if value is None or value == "":
                continue
            text = described.codec.write(value)
            fields[described.hash_name] = text[:MAX_UPDATE_TEXT] if isinstance(value, str) else text
        return fields


# An update writes record fields only: a name that is not one fails here, at import.
_UPDATED_FIELDS = tuple(CALL_FIELD[f.name] for f in dataclasses.fields(CallUpdate))


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
        """The call as accepted at `now_ms`: `queued`, its dispatch message `job_id`; the
        draft's fields and its budgets are the record's fields of the same names."""
        return CallRecord(
            **{name: getattr(self, name) for name in _DRAFTED},
            **{name: getattr(self.budgets, name) for name in _BUDGETED},
            status="queued",
            job_id=job_id,
            created_at=now_ms,
            updated_at=now_ms,
            seq=0,
            transitions={"queued": now_ms},
        )


_DRAFTED = tuple(f.name for f in dataclasses.fields(CallDraft) if f.name != "budgets")
_BUDGETED = tuple(f.name for f in dataclasses.fields(CallBudgets))
