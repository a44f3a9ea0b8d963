"""The event that ends a call, whichever path ends it (dispatcher, webhooks, reconciler).

One rule for every path (`contract.outcome_event_type`): a `failed` outcome is reported
as `call.failed`, every other one as `call.ended` with `data.status`. Both carry
`data.reason` (a `contract.EndReason`) and the SIP status when known; the call record gets
`end_reason`, the SIP fields and, for failures, `error_code` / `error_message` (one
`CallUpdate`). Whoever applies an event counts the end it made (`count_call_end`): the
store counts nothing. An ended call's room goes with it (`drop_room`), whoever ended it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from livekit import api as lkapi

from agent_runtime.contract import outcome_event_type
from api.livekit import LIVEKIT_ERRORS
from api.metrics import BILLED_SECONDS, CALLS_ENDED
from api.store.call_record import CallUpdate
from api.store.events import ApplyResult, EventSpec
from sip import CallOutcome, delete_room

logger = logging.getLogger("outdial.api")


def end_event(
    outcome: CallOutcome,
    *,
    code: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
    timestamp: float | None = None,
    expected_status: str | None = None,
) -> EventSpec:
    """The event for `outcome`; `code`/`message` name a failure (default: the reason)."""
    payload: dict[str, Any] = {"reason": outcome.reason, **(data or {})}
    if outcome.sip_status_code is not None:
        payload["sip_status_code"] = outcome.sip_status_code
    if outcome.sip_status:
        payload["sip_status"] = outcome.sip_status
    update = CallUpdate(
        end_reason=outcome.reason,
        sip_status_code=outcome.sip_status_code,
        sip_status=outcome.sip_status,
    )
    event_type = outcome_event_type(outcome.status)
    if event_type == "call.failed":
        code = code or outcome.reason.upper()
        message = message or f"the call ended: {outcome.reason}"
        payload |= {"code": code, "message": message}
        update = replace(update, error_code=code, error_message=message)
    else:
        payload = {"status": outcome.status, **payload}
        if message:
            payload["message"] = message
    extra: dict[str, Any] = {"expected_status": expected_status}
    if event_id is not None:
        extra["id"] = event_id
    return EventSpec(event_type, payload, timestamp=timestamp, call_update=update, **extra)


def count_call_end(result: ApplyResult) -> None:
    """Count the call in `outdial_calls_ended_total` when `result`'s event ended it, and
    the seconds its end billed in `outdial_billed_seconds_total`."""
    if result.ended:
        CALLS_ENDED.labels(result.status).inc()
        BILLED_SECONDS.inc(result.billed_seconds)


async def drop_room(livekit: lkapi.LiveKitAPI, room_name: str, call_id: str) -> None:
    """Delete the room of a call that ended (hangs up any leg left in it), whoever ended
    it. A room already gone is fine, and a DeleteRoom that timed out or failed after it
    took effect is retried into that (`sip.delete_room`). Whatever still fails (LiveKit
    unreachable) is logged, not raised: the call is ended in the store either way, its end
    must not fail with the room, and an empty room closes by itself."""
    try:
        await delete_room(livekit, room_name)
    except LIVEKIT_ERRORS as exc:
        logger.warning(
            "could not delete room %s: %s",
            room_name,
            exc,
            extra={"call_id": call_id, "room": room_name},
        )
