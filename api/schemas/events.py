"""Event response bodies: a call's events with their callback delivery state, a queued
redelivery, and the answer to an agent's event."""

from __future__ import annotations

from typing import Any, Literal

from api.schemas.base import ResponseModel, Timestamp
from api.store.events import ApplyOutcome


class NoCallback(ResponseModel):
    """The call has no callback_url: nothing is delivered."""

    state: Literal["no_callback"]
    attempts: int


class Attempts(ResponseModel):
    attempts: int
    last_status: int | None
    last_error: str | None
    last_attempt_at: Timestamp | None


class Redelivery(Attempts):
    state: Literal["pending", "delivered", "failed"]


class Delivery(Attempts):
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: Timestamp | None
    redelivery: Redelivery | None


class CallEvent(ResponseModel):
    """`data` is the event's own payload, as its source reported it (see docs/callbacks.md,
    Event types)."""

    id: str
    type: str
    sequence: int
    status: str
    timestamp: Timestamp
    data: dict[str, Any]
    delivery: Delivery | NoCallback


class CallEvents(ResponseModel):
    call_id: str
    events: list[CallEvent]


class RedeliveryQueued(ResponseModel):
    status: Literal["success"]
    call_id: str
    event_id: str
    sequence: int
    job_id: str


class AgentEventApplied(ResponseModel):
    status: Literal["success"]
    applied: bool
    outcome: ApplyOutcome
    sequence: int | None
    call_status: str
