"""Event response bodies: a call's events with their callback delivery state, a queued
redelivery, and the answer to an agent's event."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from api.store.events import ApplyOutcome


class NoCallback(BaseModel):
    """The call has no callback_url: nothing is delivered."""

    state: Literal["no_callback"]
    attempts: int


class Attempts(BaseModel):
    attempts: int
    lastStatus: int | None
    lastError: str | None
    lastAttemptAt: str | None


class Redelivery(Attempts):
    state: Literal["pending", "delivered", "failed"]


class Delivery(Attempts):
    state: Literal["pending", "delivered", "failed"]
    nextAttemptAt: str | None
    redelivery: Redelivery | None


class CallEvent(BaseModel):
    id: str
    type: str
    sequence: int
    status: str
    timestamp: str
    data: dict[str, Any]
    delivery: Delivery | NoCallback


class CallEvents(BaseModel):
    callId: str
    events: list[CallEvent]


class RedeliveryQueued(BaseModel):
    status: Literal["success"]
    callId: str
    eventId: str
    sequence: int
    jobId: str


class AgentEventApplied(BaseModel):
    status: Literal["success"]
    applied: bool
    outcome: ApplyOutcome
    sequence: int | None
    callStatus: str
