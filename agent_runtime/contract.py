"""The one schema the API and the agent worker share.

The dispatcher serialises `DispatchMetadata` into the LiveKit agent dispatch; the worker
parses it back and reports `AgentEvent`s to `events_url` with `event_token`.
Only pydantic here: the worker must not depend on the API package.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

CONTRACT_VERSION: Final = 1

Scalar = str | int | float | bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The name a workspace gives its own model key; the agent worker maps it to a variable.
MODEL_KEY_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class ModelConfig(_Model):
    """One stage of the voice pipeline. Empty fields take the worker's environment defaults.

    The operator's key goes only to the operator's configured `base_url` (or the provider's
    default one); another `base_url` gets the key named by `api_key_ref` (a name, never a
    key: the agent worker reads the key from its own environment) or none at all.
    """

    provider: str = "openai"
    model: str | None = None
    voice: str | None = None
    base_url: str | None = None
    language: str | None = None
    api_key_ref: str | None = Field(None, pattern=MODEL_KEY_REF_PATTERN)


class PipelineConfig(_Model):
    llm: ModelConfig = ModelConfig()
    stt: ModelConfig = ModelConfig()
    tts: ModelConfig = ModelConfig()


class VoicemailConfig(_Model):
    action: Literal["hangup", "leave_message"] = "hangup"
    message: str | None = None


class AgentConfig(_Model):
    """Snapshot of the agent at dispatch time: later edits do not change a running call."""

    id: str
    name: str
    instructions: str
    first_message: str | None = None
    worker_name: str
    pipeline: PipelineConfig = PipelineConfig()
    max_duration_seconds: int | None = None
    ring_timeout_seconds: int | None = None
    silence_timeout_seconds: int | None = None
    voicemail: VoicemailConfig = VoicemailConfig()
    transfer_to: str | None = None


class Metering(_Model):
    """A call whose workspace has a minute balance: from its answer on it holds
    `reserved_seconds`; before they run out the agent POSTs to `reservation_url` (with the
    event token) for one more minute, answered `{"granted", "reservedSeconds"}`, and ends
    the call (`balance_exhausted`) when it is not granted."""

    reserved_seconds: int = Field(ge=0)
    reservation_url: str


class DispatchMetadata(_Model):
    """What the agent worker receives as `job.metadata` (JSON)."""

    version: Literal[1] = CONTRACT_VERSION
    call_id: str
    workspace_id: str
    room_name: str
    agent: AgentConfig
    dynamic_variables: dict[str, Scalar] = Field(default_factory=dict)
    # The client's metadata: reported with every event, never shown to the model.
    metadata: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-not-for-model": True}
    )
    to_number: str
    from_number: str | None = None
    sip_participant_identity: str
    ring_timeout_seconds: int
    max_duration_seconds: int
    events_url: str
    event_token: str
    # None: not metered (the agent never asks for minutes).
    metering: Metering | None = None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str) -> DispatchMetadata:
        return cls.model_validate_json(raw)


# --- The call vocabulary: every status, end reason and event type has its one owner here.

# Call statuses in the order a call moves through them; terminal ones share the last rank.
# `scheduled`: accepted for later (a time, or the next opening of its call window); the
# one step back, `queued -> scheduled` for a call claimed after its window closed, is its
# own script (`api/store/lua/reschedule_queued.lua`), never an event.
CallStatus = Literal[
    "scheduled",
    "queued",
    "dispatching",
    "waiting_for_agent",
    "dialing",
    "ringing",
    "in_progress",
    "completed",
    "no_answer",
    "busy",
    "failed",
    "canceled",
]
# Terminal outcomes of a call that was placed (`call.ended`'s `data.status`, plus `failed`).
EndedStatus = Literal["completed", "no_answer", "busy", "failed"]
TERMINAL_STATUSES: frozenset[str] = frozenset({*get_args(EndedStatus), "canceled"})
TERMINAL_RANK = 10
# A status may only move to one of higher rank (the Lua scripts are generated from this).
STATUS_RANK: dict[str, int] = {
    status: TERMINAL_RANK if status in TERMINAL_STATUSES else rank
    for rank, status in enumerate(get_args(CallStatus))
}

# Why a call ended: the `reason` of `call.ended` / `call.failed` and the call's `endReason`.
EndReason = Literal[
    # answered calls
    "completed",
    "hangup_by_callee",
    "hangup_by_agent",
    "voicemail",
    "max_duration",
    "silence_timeout",
    "transferred",
    # the callee asked not to be called again (`opt_out`): the agent said goodbye
    "opted_out",
    # the workspace's minute balance ran out (the agent said goodbye)
    "balance_exhausted",
    "connection_lost",
    "room_closed",
    # never answered
    "no_answer",
    "busy",
    "rejected",
    "invalid_number",
    "trunk_failure",
    # the agent was not there to talk, or stopped
    "agent_unavailable",
    "agent_failed",
    # Outdial or LiveKit could not place or keep the call
    "error",
    "livekit_error",
    "invalid_metadata",
    "cannot_join_room",
    # the client
    "canceled_by_client",
    # the operator disabled the workspace before the call was dialed
    "workspace_disabled",
    # the number joined the workspace's do-not-call list before the call was dialed
    "do_not_call",
]

# Why a `scheduled` call waits (its `scheduledReason`, `call.scheduled`'s `data.reason`).
ScheduledReason = Literal["scheduled_time", "call_window"]
# Why a `queued` call waits for its dial (its `waitingFor`, `call.waiting`'s `data.reason`).
WaitingReason = Literal["trunk_rate", "trunk_concurrency", "workspace_concurrency"]

# Events Outdial records on a call itself (the agent's are `AgentEventType`); the status
# each moves a call to is `api.store.events.EVENT_STATUS`.
CallEventType = Literal[
    "call.scheduled",
    "call.queued",
    "call.waiting",
    "call.dispatching",
    "call.waiting_for_agent",
    "call.dialing",
    "call.ringing",
    "call.answered",
    "call.ended",
    "call.failed",
    "call.canceled",
    "agent.job_started",
    "agent.job_ended",
]

AgentEventType = Literal[
    "agent.started",
    # the agent joined the room and its session can speak: the dial may go out now
    "agent.ready",
    "call.answered",
    "call.voicemail",
    # the callee asked not to be called again: the API puts the call's number on its
    # workspace's do-not-call list (source `opt_out`)
    "call.opted_out",
    "call.transcript",
    "call.ended",
    "call.failed",
]


def outcome_event_type(status: EndedStatus) -> Literal["call.ended", "call.failed"]:
    """Which event carries a call's end, whichever path ended it: `call.failed` for
    `failed`, `call.ended` (with `data.status`) for every other outcome."""
    return "call.failed" if status == "failed" else "call.ended"


class AgentEvent(_Model):
    """One event the worker POSTs to `events_url` (header `Authorization: Bearer <token>`).

    `id` makes sends idempotent: the API applies an event id once however often it arrives.
    For `call.ended`, `data` carries `status` (EndedStatus), `reason` (EndReason),
    `duration_seconds`, optionally `sip_status_code`/`sip_status`; for `call.failed`,
    `reason` and `message`; for `call.transcript`, `turns` [{role, text, started_at, ended_at}].
    """

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=8, max_length=64)
    type: AgentEventType
    timestamp: float = Field(default_factory=time.time)
    data: dict[str, Any] = Field(default_factory=dict)


# --- Templates -------------------------------------------------------------------------
# `{{name}}` inserts a dynamic variable; `{{name|fallback text}}` gives a default.
# A missing variable without a default renders as an empty string and is reported
# (`missing_variables` on `agent.started`). Rendering is one pass: values are inserted as
# plain data and never expanded again, so a value containing `{{x}}` stays literal.

VARIABLE_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + VARIABLE_NAME + r")\s*(?:\|([^{}]*))?\}\}")
_BRACES = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")


class TemplateError(ValueError):
    """A template uses syntax other than `{{name}}` / `{{name|default}}`."""


def template_variables(template: str) -> list[str]:
    """Validate `template` and return the variable names it uses, in order of first use."""
    names: list[str] = []
    leftover = _PLACEHOLDER.sub("", template)
    stray = _BRACES.search(leftover)
    if stray:
        snippet = leftover[max(0, stray.start() - 20) : stray.end() + 20]
        raise TemplateError(
            f"invalid placeholder near {snippet!r}: use {{{{name}}}} or {{{{name|default}}}}"
        )
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


def render_template(template: str, variables: dict[str, Scalar]) -> tuple[str, list[str]]:
    """Render `template`; returns the text and the names that were missing without default."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = variables.get(name)
        if value is None:
            if default is None:
                missing.append(name)
                return ""
            return default.strip()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _PLACEHOLDER.sub(substitute, template), missing
