"""Placing, moving and canceling calls: the accept (read, check, write) and the answer.

A call with a due time later than now (`scheduled_at`, `delay_seconds`) is accepted
`scheduled` (`api.store.scheduled_calls`): nothing is dialed and no dispatch message exists
until the scheduler claims it at its time. A time in the past, or no time, queues it now.
The checks themselves are `call_checks`' (shared with the batch accept, `call_batch`).
"""

from __future__ import annotations

from typing import Any

from livekit import api as lkapi
from pydantic import ValidationError

from api.auth import Credentials, authorize
from api.callback_urls import CallbackUrlChecks
from api.errors import ApiError, validation_error
from api.schemas.calls import CallCreate, CallReschedule
from api.services.call_checks import (
    AcceptContext,
    accepted_answer,
    check_idempotency_key,
    due_time,
    prepare_call,
    replay,
    request_fingerprint,
)
from api.services.call_end import count_call_end, drop_room
from api.services.call_windows import window_from_json
from api.services.due_time import due_in_window
from api.settings import Settings
from api.store.accept_reads import read_for_accept
from api.store.base import Store
from api.store.call_record import CallRecord, CallUpdate
from api.store.calls import get_call, run_accept
from api.store.clock import now_ms
from api.store.events import EventSpec
from api.store.scheduled_calls import Due, cancel_call_event, move_scheduled_call


async def place_call(
    store: Store,
    settings: Settings,
    creds: Credentials,
    raw_body: bytes,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Accept a call. The hot path: one pipelined read (credentials, agent, numbers, the
    trunks the operator assigned, earlier answer for the idempotency key), the checks, then
    one atomic write, which also refuses a number on the workspace's do-not-call list
    (DO_NOT_CALL, 403) and reserves the call's first minute from a metered workspace's
    balance (INSUFFICIENT_BALANCE, 402, when it cannot): a refusal stores nothing.

    The body is parsed first (its agent id names a key to read) but a bad body is reported
    only after the credentials were checked: a wrong key always hears 401 first.
    """
    try:
        body: CallCreate | None = CallCreate.model_validate_json(raw_body)
    except ValidationError as exc:
        body, invalid_body = None, exc
    agent_id = body.call_agent_id if body is not None else None
    key_hash = creds.key_hash  # a SHA-256 each time it is read
    reads = await read_for_accept(
        store, creds.workspace_id, key_hash, agent_id, idempotency_key, creds.kind
    )
    workspace = authorize(reads.authentication, key_hash)
    if body is None:
        raise validation_error(invalid_body.errors())
    check_idempotency_key(idempotency_key)
    # Only an idempotent request needs its fingerprint (to tell a replay from a conflict).
    fingerprint = request_fingerprint(body) if idempotency_key else None
    if reads.previous is not None:
        return replay(reads.previous, fingerprint)
    context = AcceptContext(
        workspace,
        reads.numbers,
        reads.assigned_trunks,
        CallbackUrlChecks(settings.callback_allow_private),
    )
    write = await prepare_call(
        store, settings, body, reads.agent, context, idempotency_key, fingerprint
    )
    outcome = await run_accept(store, write)
    return accepted_answer(write, outcome, fingerprint, workspace.id)


async def reschedule_call(store: Store, call: CallRecord, body: CallReschedule) -> CallRecord:
    """Move a still `scheduled` call to a new time (a past one: due now, claimed at once),
    at its window's next opening when closed then; CALL_NOT_SCHEDULED 409 once it left
    `scheduled` (it was claimed, canceled or ended)."""
    now = now_ms()
    asked = due_time(body, now)
    due = asked or Due(now, "scheduled_time")
    if call.call_window is not None:
        window = window_from_json(call.call_window)
        ready_s = call.agent_ready_timeout_s or 0
        due = due_in_window(window, call.to, asked, now, ready_s) or Due(now, "scheduled_time")
    result = await move_scheduled_call(store, call.id, due)
    if result.outcome == "over_quota":
        raise ApiError(
            409,
            "TOO_MANY_MOVES",
            f"call {call.id} was moved too often: cancel it and place a new one",
            {"status": result.status},
        )
    if result.outcome != "applied":
        raise ApiError(
            409,
            "CALL_NOT_SCHEDULED",
            f"call {call.id} is {result.status or 'gone'}: only a scheduled call can be moved",
            {"status": result.status},
        )
    moved = await get_call(store, call.id)
    assert moved is not None  # the move just applied; a call record outlives its events
    return moved


async def cancel_call(store: Store, livekit: lkapi.LiveKitAPI, call: CallRecord) -> str:
    """Cancel a call; returns its status afterwards. Dialed calls lose their room; a
    scheduled one leaves the due set in the same step."""
    result = await cancel_call_event(
        store,
        call.id,
        EventSpec(
            "call.canceled",
            {"reason": "canceled_by_client"},
            call_update=CallUpdate(end_reason="canceled_by_client"),
        ),
    )
    count_call_end(result)
    if not result.applied:
        raise ApiError(
            409,
            "CALL_ALREADY_ENDED",
            f"call {call.id} is already {result.status}",
            {"status": result.status},
        )
    # Always: the status read before the cancel may be stale, and a missing room is fine.
    await drop_room(livekit, call.room_name, call.id)
    return result.status
