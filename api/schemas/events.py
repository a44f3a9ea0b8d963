"""Event response bodies: a call's events with their callback delivery state, a queued
redelivery, and the answer to an agent's event."""

from __future__ import annotations

from typing import Any, Literal

from api.relay.state import DeliveryState
from api.relay.views import EventDelivery, EventWithDelivery
from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.store.events import ApplyOutcome


class NoCallback(ResponseModel):
    """The call has no callback_url: nothing is delivered."""

    state: Literal["no_callback"]
    attempts: int


# A delivery's times are null until reached: absent or 0 is never (`or None`), not 1970.
class Attempts(ResponseModel):
    attempts: int
    last_status: int | None
    last_error: str | None
    last_attempt_at: Timestamp | None


class Redelivery(Attempts):
    state: Literal["pending", "delivered", "failed"]

    @classmethod
    def of(cls, state: DeliveryState) -> Redelivery:
        return cls(
            state=state.state,
            attempts=state.attempts,
            last_status=state.last_status,
            last_error=state.last_error,
            last_attempt_at=iso_from_ms(state.last_attempt_ms or None),
        )


class Delivery(Attempts):
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: Timestamp | None
    redelivery: Redelivery | None

    @classmethod
    def of(cls, delivery: EventDelivery) -> Delivery:
        state, redelivery = delivery.state, delivery.redelivery
        return cls(
            state=delivery.shown_state,
            attempts=state.attempts,
            last_status=state.last_status,
            last_error=state.last_error,
            last_attempt_at=iso_from_ms(state.last_attempt_ms or None),
            next_attempt_at=iso_from_ms(state.next_attempt_ms or None),
            redelivery=None if redelivery is None else Redelivery.of(redelivery),
        )


class RecordedEvent(ResponseModel):
    """An event as recorded: what `GET .../events` and the live stream both show of it.
    `data` is the event's own payload, as its source reported it (see docs/callbacks.md,
    Event types)."""

    id: str
    type: str
    sequence: int
    status: str
    timestamp: Timestamp
    data: dict[str, Any]


class CallEvent(RecordedEvent):
    """A recorded event with its callback delivery state."""

    delivery: Delivery | NoCallback

    @classmethod
    def of(cls, listed: EventWithDelivery) -> CallEvent:
        delivery = listed.delivery
        shown = (
            NoCallback(state="no_callback", attempts=0)
            if delivery is None
            else Delivery.of(delivery)
        )
        return cls.model_validate(listed.event | {"delivery": shown})


class CallEvents(ResponseModel):
    call_id: str
    events: list[CallEvent]

    @classmethod
    def of(cls, call_id: str, events: list[EventWithDelivery]) -> CallEvents:
        return cls(call_id=call_id, events=[CallEvent.of(event) for event in events])


class RedeliveryQueued(ResponseModel):
    status: Literal["success"]
    call_id: str
    event_id: str
    sequence: int
    job_id: str


class AgentEventApplied(ResponseModel):
    """`status` is the call's status after the event, as `GET` shows it."""

    applied: bool
    outcome: ApplyOutcome
    sequence: int | None
    status: str
