"""Call bodies: `POST /v1/api/call` in, call records and events out.

Invariant: what is accepted is stored as sent. JSON has no NaN or Infinity, yet the parser
takes the `NaN`/`Infinity` literals and serialising them writes `null`; such values are
refused instead of silently changing. The agent id names a Redis key, so it must be an id.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from agent_runtime.contract import Scalar
from api.ids import ID_PATTERN
from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.schemas.call_windows import CallWindowSpec
from api.store.call_fields import RecordField
from api.store.call_record import CALL_FIELDS, CallRecord

MAX_BODY_BYTES = 64 * 1024
MAX_SECTION_BYTES = 16 * 1024
MAX_VARIABLES = 64
# How far ahead a call may be placed (`delay_seconds`, `scheduled_at`).
MAX_DELAY_SECONDS = 30 * 86_400
_NOT_FINITE = "NaN and Infinity are not JSON numbers: send a finite number or a string"


def _within_reach(value: datetime) -> datetime:
    """An instant at most MAX_DELAY_SECONDS ahead (the window search and the due set take
    times, not calendars: year 9999 would overflow them)."""
    try:
        ahead = value.timestamp() - time.time()
    except (OverflowError, ValueError):
        ahead = math.inf
    if ahead > MAX_DELAY_SECONDS:
        raise ValueError(f"must be at most {MAX_DELAY_SECONDS // 86_400} days ahead")
    return value


# When to dial: an instant with its offset; a past one means now.
ScheduledTime = Annotated[AwareDatetime, AfterValidator(_within_reach)]


def _finite_scalar(value: Scalar) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(_NOT_FINITE)
    return value


def _non_finite_path(value: Any, path: str) -> str | None:
    """Where in a JSON value a NaN or Infinity sits (`a.b.0`), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    for key, child in children:
        found = _non_finite_path(child, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _finite_json(value: dict[str, Any]) -> dict[str, Any]:
    found = _non_finite_path(value, "")
    if found is not None:
        raise ValueError(f"{found}: {_NOT_FINITE}")
    return value


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=64)
    call_agent_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    callback_url: str | None = Field(None, min_length=1)
    dynamic_variables: dict[str, Annotated[Scalar, AfterValidator(_finite_scalar)]] = Field(
        default_factory=dict
    )
    metadata: Annotated[dict[str, Any], AfterValidator(_finite_json)] = Field(default_factory=dict)
    from_number: str | None = Field(None, min_length=2, max_length=32)
    campaign_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    max_duration_seconds: int | None = Field(None, ge=10, le=14_400)
    ring_timeout_seconds: int | None = Field(None, ge=5, le=80)
    # When to dial (not both): an instant with its offset (a past one: now), or a delay.
    scheduled_at: ScheduledTime | None = None
    delay_seconds: int | None = Field(None, ge=0, le=MAX_DELAY_SECONDS)
    # Only start the call inside these hours (its due time moves to the next opening).
    call_window: CallWindowSpec | None = None

    @model_validator(mode="after")
    def _one_time(self) -> Self:
        if self.scheduled_at is not None and self.delay_seconds is not None:
            raise ValueError("send scheduled_at or delay_seconds, not both")
        return self


class CallReschedule(BaseModel):
    """`PATCH /v1/api/call/{call_id}`: a scheduled call's new time (exactly one field)."""

    model_config = ConfigDict(extra="forbid")

    scheduled_at: ScheduledTime | None = None
    delay_seconds: int | None = Field(None, ge=0, le=MAX_DELAY_SECONDS)

    @model_validator(mode="after")
    def _one_time(self) -> Self:
        if (self.scheduled_at is None) == (self.delay_seconds is None):
            raise ValueError("send exactly one of scheduled_at or delay_seconds")
        return self


class CallAccepted(ResponseModel):
    """The accept answer. The accept path, the benchmarked one, builds it as a plain dict
    rather than through this model (1.4 against 3.8 us per call): `place_call`
    (api/services/calls.py) writes it, and the store adds the `jobId` it makes
    (api/store/calls.py). tests/test_call_api.py holds every answer, first and replayed, to
    this model with no field more."""

    status: Literal["success"]
    message: str
    call_id: str
    room_name: str
    job_id: str


class CallView(ResponseModel):
    """A call as `GET /v1/api/call/{call_id}` shows it: `transitions` the time each status
    was reached. Each field is a `CallRecord` field its description marks shown, under
    that name (`call_fields.stored`); declared here for the OpenAPI document."""

    call_id: str
    status: str
    to: str
    from_number: str | None = Field(alias="from")
    agent_id: str
    room_name: str
    job_id: str | None
    campaign_id: str | None
    callback_url: str | None
    sip_trunk_id: str | None
    sip_call_id: str | None
    sip_status_code: int | None
    sip_status: str | None
    end_reason: str | None
    error_code: str | None
    error_message: str | None
    max_duration_seconds: int | None
    ring_timeout_seconds: int | None
    created_at: Timestamp
    updated_at: Timestamp
    ended_at: Timestamp | None
    transitions: dict[str, Timestamp]
    dynamic_variables: dict[str, Scalar]
    metadata: dict[str, Any]
    # A call placed for later: when it is (was) due, and why it waited (ScheduledReason).
    scheduled_at: Timestamp | None = None
    scheduled_reason: str | None = None
    # A queued call held by a limit: which one (WaitingReason) and since when.
    waiting_for: str | None = None
    waiting_since: Timestamp | None = None

    @classmethod
    def of(cls, call: CallRecord) -> CallView:
        """The view of `call`: its fields the description marks shown (`call_fields`)."""
        return cls(**{name: _shown(f, getattr(call, f.name)) for name, f in _SHOWN_FIELDS})


# Every field of the view is a record field (`call_fields.stored(shown=...)`):
# tests/test_call_fields.py holds this model and the description to the same names.
_SHOWN_FIELDS = tuple((f.shown_as, f) for f in CALL_FIELDS if f.shown_as is not None)


def _shown(field: RecordField, value: Any) -> Any:
    """A record value as the view shows it: a time (epoch ms) as a timestamp, an empty
    text described `blank_shown_as_null` as null."""
    if field.blank_shown_as_null:
        return value or None
    if not field.codec.time:
        return value
    if field.codec.per_status:
        return {status: iso_from_ms(ms) for status, ms in value.items()}
    return iso_from_ms(value)


class CallPage(ResponseModel):
    """Newest first; `nextCursor` null at the end of the list."""

    calls: list[CallView]
    next_cursor: str | None


class CallCanceled(ResponseModel):
    """The call's status once canceled (`status`, as `GET` shows it)."""

    call_id: str
    status: str
