"""Delivering a call's events in sequence order: one drain per call at a time.

A drain walks the cursor forward: each event is delivered (or given up) before the next
is sent. A failed attempt that may succeed later parks the call in `relay:due` and ends
the drain: no thread ever sleeps for a retry; the scheduler re-enqueues the call when due.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import aiohttp

from api.metrics import CALLBACK_DELIVERIES
from api.relay import steps
from api.relay.http import post_event
from api.relay.payload import CallTarget, event_body, event_headers
from api.relay.policy import AttemptResult
from api.relay.state import after_attempt
from api.settings import Settings
from api.store.base import Store
from api.store.clock import now_ms

logger = logging.getLogger("outdial.relay")

# A drain hands its thread back after this long (the call goes back to `relay:due`), so a
# call with a long backlog to a slow receiver cannot hold a worker thread indefinitely.
DRAIN_BUDGET_SECONDS = 15.0
# After an unexpected error, the call is tried again this much later.
ERROR_RETRY_MS = 2_000
# A disabled workspace's events are given up with this error (no request is sent); a
# redelivery after the workspace is enabled again sends one.
WORKSPACE_DISABLED_ERROR = "the workspace is disabled: callback not sent"


async def attempt(
    target: CallTarget, event: dict[str, Any], settings: Settings, session: aiohttp.ClientSession
) -> AttemptResult:
    """One delivery attempt through `session` (see `api.relay.http.open_delivery_session`),
    counted in `outdial_callback_deliveries_total{outcome}`."""
    result = await _send(target, event, settings, session)
    CALLBACK_DELIVERIES.labels(result.outcome).inc()
    return result


async def _send(
    target: CallTarget, event: dict[str, Any], settings: Settings, session: aiohttp.ClientSession
) -> AttemptResult:
    if target.workspace_disabled:
        return AttemptResult("failed", error=WORKSPACE_DISABLED_ERROR)
    if not target.webhook_secret:
        return AttemptResult("failed", error="the workspace has no webhook secret to sign with")
    body = event_body(event, target)
    return await post_event(
        session,
        target.callback_url,
        body,
        event_headers(event, body, target.webhook_secret),
        timeout_seconds=settings.callback_timeout_seconds,
        allow_private=settings.callback_allow_private,
    )


def _log_attempt(
    target: CallTarget, event: dict[str, Any], result: AttemptResult, final: bool
) -> None:
    if result.outcome == "delivered":
        return
    logger.warning(
        "callback %s %s seq %s: %s%s",
        target.call_id,
        event["type"],
        event["sequence"],
        result.error,
        " (given up)" if final else " (will retry)",
        extra={"call_id": target.call_id, "workspace_id": target.workspace_id},
    )


async def _walk(
    drain: steps.Drain, step: steps.Step, settings: Settings, session: aiohttp.ClientSession
) -> None:
    deadline = time.monotonic() + DRAIN_BUDGET_SECONDS
    while step.kind == "event":
        if step.event_json:
            event = json.loads(step.event_json)
            result = await attempt(drain.target, event, settings, session)
        else:  # trimmed away: nothing left to send for this sequence
            event = {"type": "?", "sequence": step.sequence}
            result = AttemptResult("failed", error="the event is no longer stored")
        state = after_attempt(
            step.state,
            result,
            now_ms(),
            settings.callback_retry_schedule,
            settings.callback_retry_window_seconds,
        )
        _log_attempt(drain.target, event, result, state.final)
        step = await steps.record(drain, step.sequence, state)
        if step.kind == "event" and time.monotonic() > deadline:
            await steps.release(
                drain.store,
                drain.call_id,
                drain.token,
                retry_in_ms=0,
                workspace_id=drain.target.workspace_id,
            )
            return


async def drain_call(
    store: Store, settings: Settings, session: aiohttp.ClientSession, call_id: str
) -> None:
    """Deliver the call's undelivered events, in order, until done or parked."""
    token = uuid.uuid4().hex
    lease_ms = int(settings.callback_timeout_seconds * 1000) + steps.LEASE_MARGIN_MS
    drain: steps.Drain | None = None
    try:
        drain, step = await steps.begin(
            store, call_id, token, lease_ms, settings.callback_max_in_flight_per_workspace
        )
        if step.kind == "gone":
            await steps.release(store, call_id, token, retry_in_ms=None)
        elif drain is not None:  # `locked`: another drain has the call, and it is due again
            await _walk(await steps.with_workspace_state(drain), step, settings, session)
    except Exception:
        # The call must stay reachable whatever went wrong (Redis hiccup, a bug): park it.
        # If even that fails, the exception reaches the actor and Dramatiq retries it.
        logger.exception("relay drain of call %s failed", call_id, extra={"call_id": call_id})
        await _park_after_error(store, call_id, token, drain)
    except BaseException:  # cancelled (time limit, shutdown): park, then let it stop
        await _park_after_error(store, call_id, token, drain)
        raise


async def _park_after_error(
    store: Store, call_id: str, token: str, drain: steps.Drain | None
) -> None:
    workspace_id = drain.target.workspace_id if drain else None
    await steps.release(store, call_id, token, ERROR_RETRY_MS, workspace_id)
