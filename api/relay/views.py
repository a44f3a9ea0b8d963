"""A call's events as the API shows them: each with where its delivery stands."""

from __future__ import annotations

import json
from typing import Any

from api.relay.redeliver import redelivery_field
from api.relay.state import DeliveryState
from api.store.base import Store
from api.store.calls import CallRecord
from api.store.events import iso_timestamp


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
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    pipe.lrange(keys.events(call.id), 0, -1)
    pipe.hgetall(keys.delivery(call.id))
    raw_events, delivery = await pipe.execute()
    has_callback = bool(call.get("callback_url"))
    listed = []
    for raw in raw_events:
        event = json.loads(raw)
        sequence = event["sequence"]
        redelivery = delivery.get(redelivery_field(sequence))
        event["delivery"] = delivery_view(
            has_callback,
            DeliveryState.from_json(delivery.get(str(sequence))),
            DeliveryState.from_json(redelivery) if redelivery else None,
        )
        listed.append(event)
    return listed


async def event_sequence(store: Store, call_id: str, event_id: str) -> int | None:
    sequence = await store.redis.hget(store.keys.event_ids(call_id), event_id)
    return int(sequence) if sequence else None
