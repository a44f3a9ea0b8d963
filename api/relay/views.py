"""A call's events as the API shows them: each with where its callback delivery stands.

Invariant: what is shown is what the relay recorded (`DeliveryState`s, typed), except that
an event whose delivery failed and whose redelivery then succeeded shows as delivered. The
response shape is built from these in one place, `api.schemas.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.relay.state import DeliveryState, DeliveryStatus
from api.store.base import Store
from api.store.call_record import CallRecord
from api.store.events import list_events_with_delivery
from api.store.redelivery import redelivery_field


@dataclass(frozen=True, slots=True)
class EventDelivery:
    """One event's delivery: its attempts in order, and its latest redelivery, if any."""

    state: DeliveryState
    redelivery: DeliveryState | None

    @property
    def shown_state(self) -> DeliveryStatus:
        """The state shown: a failed delivery that a redelivery made good is delivered."""
        redelivered = self.redelivery is not None and self.redelivery.state == "delivered"
        return "delivered" if self.state.state == "failed" and redelivered else self.state.state


@dataclass(frozen=True, slots=True)
class EventWithDelivery:
    # The event as stored: id, type, sequence, status, timestamp, data.
    event: dict[str, Any]
    # None: the call has no callback_url, so nothing is delivered.
    delivery: EventDelivery | None


async def events_with_delivery(store: Store, call: CallRecord) -> list[EventWithDelivery]:
    """The call's events in order, each with its delivery (one round trip)."""
    events, delivery = await list_events_with_delivery(store, call.id)
    if not call.callback_url:
        return [EventWithDelivery(event, None) for event in events]
    listed = []
    for event in events:
        sequence = event["sequence"]
        redelivery = delivery.get(redelivery_field(sequence))
        state = EventDelivery(
            DeliveryState.from_json(delivery.get(str(sequence))),
            DeliveryState.from_json(redelivery) if redelivery else None,
        )
        listed.append(EventWithDelivery(event, state))
    return listed
