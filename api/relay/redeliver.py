"""Sending one stored event again on request, outside the call's ordered drain.

The API only enqueues (`api.store.redelivery.enqueue_redelivery`; it never waits on a
receiver); the relay worker makes one attempt and records it under `redelivery:{seq}` in
the delivery hash. The cursor never moves.

Redeliveries cannot flood a receiver or the relay: an event has at most one pending
redelivery, a workspace gets `OUTDIAL_REDELIVERIES_PER_MINUTE` requests per fixed
one-minute window, and each attempt holds one of the workspace's in-flight slots like any
delivery (when none is free, the message comes back shortly). The store's scripts keep
those limits (see `api.store.redelivery`).
"""

from __future__ import annotations

import json

import aiohttp
from pydantic_core import to_json

from api.relay.drain import attempt
from api.relay.payload import CallTarget
from api.relay.state import DeliveryState
from api.relay.steps import LEASE_MARGIN_MS
from api.settings import Settings
from api.store.base import Store
from api.store.clock import now_ms
from api.store.redelivery import (
    RedeliverySource,
    finish_redelivery,
    read_redelivery_source,
    read_redelivery_state,
    take_redelivery_slot,
)

# When the workspace has no free in-flight slot, the redelivery comes back this much later.
BUSY_RETRY_MS = 1_000


def _target(source: RedeliverySource) -> CallTarget | None:
    """Where and how the event goes; None when the call is gone, unreadable or has no
    callback URL (nothing to send)."""
    call = source.call
    if call is None or not call.callback_url:
        return None
    return CallTarget(
        call_id=call.id,
        workspace_id=call.workspace_id,
        room_name=call.room_name,
        callback_url=call.callback_url,
        metadata_json=to_json(call.metadata).decode(),
        webhook_secret=source.webhook_secret,
        workspace_disabled=source.workspace_disabled,
    )


async def redeliver_event(
    store: Store, settings: Settings, session: aiohttp.ClientSession, call_id: str, sequence: int
) -> int | None:
    """One attempt at the event, in one of the workspace's in-flight slots. Returns None
    when done, or the ms after which to try again (no slot free)."""
    source = await read_redelivery_source(store, call_id, sequence)
    target = _target(source)
    # The call or the event expired since (or the call is unreadable: no retry reads it).
    if target is None or source.event_json is None:
        workspace_id = target.workspace_id if target else ""
        await finish_redelivery(store, call_id, sequence, workspace_id, None)
        return None
    lease_ms = int(settings.callback_timeout_seconds * 1000) + LEASE_MARGIN_MS
    took = await take_redelivery_slot(
        store,
        target.workspace_id,
        call_id,
        sequence,
        lease_ms,
        settings.callback_max_in_flight_per_workspace,
    )
    if not took:
        return BUSY_RETRY_MS
    try:
        result = await attempt(target, json.loads(source.event_json), settings, session)
    except BaseException:
        await finish_redelivery(store, call_id, sequence, target.workspace_id, None, done=False)
        raise
    previous = DeliveryState.from_json(await read_redelivery_state(store, call_id, sequence))
    recorded = DeliveryState(
        state="delivered" if result.outcome == "delivered" else "failed",
        attempts=previous.attempts + 1,
        first_attempt_ms=previous.first_attempt_ms or now_ms(),
        last_attempt_ms=now_ms(),
        last_status=result.status,
        last_error=result.error,
    )
    await finish_redelivery(store, call_id, sequence, target.workspace_id, recorded.to_json())
    return None
