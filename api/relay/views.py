"""A call's events as the API shows them: each with where its delivery stands."""

from __future__ import annotations

from typing import Any

from api.relay.state import DeliveryState
from api.store.base import Store
from api.store.call_record import CallRecord
from api.store.events import iso_timestamp, list_events_with_delivery
from api.store.redelivery import redelivery_field


def _ms_to_iso(value: int | None) -> str | None:
    return iso_timestamp(value / 1000) if value else None


def _attempts_view(state: DeliveryState) -> dict[str, Any]:
    return {
        "attempts": state.attempts,
        "lastStatus": state.last_status,
        "lastError": state.last_error,
        "lastAttemptAt": _ms_to_iso(state.last_attempt_ms),
    }


def delivery_view(
    has_callback: bool, state: DeliveryState, redelivery: DeliveryState | None
) -> dict[str, Any]:
    if not has_callback:
        return {"state": "no_callback", "attempts": 0}
    shown = state.state
    if shown == "failed" and redelivery is not None and redelivery.state == "delivered":
        shown = "delivered"
    return {
        "state": shown,
        **_attempts_view(state),
        "nextAttemptAt": _ms_to_iso(state.next_attempt_ms),
        "redelivery": _attempts_view(redelivery) | {"state": redelivery.state}
        if redelivery
        else None,
    }


async def events_with_delivery(store: Store, call: CallRecord) -> list[dict[str, Any]]:
    events, delivery = await list_events_with_delivery(store, call.id)
    has_callback = bool(call.callback_url)
    listed = []
    for event in events:
        sequence = event["sequence"]
        redelivery = delivery.get(redelivery_field(sequence))
        event["delivery"] = delivery_view(
            has_callback,
            DeliveryState.from_json(delivery.get(str(sequence))),
            DeliveryState.from_json(redelivery) if redelivery else None,
        )
        listed.append(event)
    return listed
