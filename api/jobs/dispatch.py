"""The dial actor: queued -> dispatching -> room with agent dispatch -> dialing -> one SIP leg.

Every step is safe to run again after a crash or a redelivery:
- `queued -> dispatching` is a compare-and-set; other states mean another run got further.
- CreateRoom is an upsert (retried on transient errors).
- `dispatching -> dialing` is a compare-and-set taken *before* CreateSIPParticipant, so only
  one run can ever send it. A run that finds the call `dialing` looks at the room instead.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiohttp
import dramatiq
from livekit import api as lkapi

from agent_runtime.contract import AgentConfig, DispatchMetadata
from api.jobs.messages import DIAL_QUEUE, DISPATCH_ACTOR
from api.jobs.resources import worker_livekit, worker_settings, worker_store
from api.metrics import DISPATCH_DURATION, TIME_TO_DIAL
from api.security import event_token
from api.store.calls import CallRecord, get_call
from api.store.events import EventSpec, apply_event, apply_event_then_read
from sip import (
    RoomPlan,
    SipLegPlan,
    delete_room,
    dial,
    dial_error_outcome,
    ensure_room,
    find_sip_participant,
)

logger = logging.getLogger("outdial.dispatch")

_UNCERTAIN_ERRORS = (aiohttp.ClientError, TimeoutError)


def participant_identity(call_id: str) -> str:
    return f"sip-{call_id}"


def dispatch_metadata(call: CallRecord) -> DispatchMetadata:
    settings = worker_settings()
    return DispatchMetadata(
        call_id=call.id,
        workspace_id=call.workspace_id,
        room_name=call.room_name,
        agent=AgentConfig.model_validate(call.agent),
        dynamic_variables=call.get("dynamic_variables", {}),
        metadata=call.get("metadata", {}),
        to_number=call.to,
        from_number=call.get("from"),
        sip_participant_identity=participant_identity(call.id),
        ring_timeout_seconds=call.ring_timeout_seconds,
        max_duration_seconds=call.max_duration_seconds,
        events_url=f"{settings.events_base_url}/v1/internal/calls/{call.id}/events",
        event_token=event_token(call.id, settings.event_signing_key),
    )


def _log(message: str, call: CallRecord, *args: Any, level: int = logging.INFO) -> None:
    extra = {"call_id": call.id, "workspace_id": call.get("workspace_id"), "room": call.room_name}
    logger.log(level, message, *args, extra=extra)


async def _fail(call: CallRecord, code: str, message: str, **fields: Any) -> None:
    """End the call as failed and drop its room (if any)."""
    store = worker_store()
    recorded = {"error_code": code, "error_message": message[:500], "end_reason": "error"}
    recorded |= {name: str(value) for name, value in fields.items() if value is not None}
    result = await apply_event(
        store,
        call.id,
        EventSpec(
            "call.failed",
            {"reason": "error", "code": code, "message": message, **fields},
            call_fields=recorded,
        ),
    )
    _log("call failed: %s %s (%s)", call, code, message, result.outcome, level=logging.WARNING)
    try:
        await delete_room(worker_livekit(), call.room_name)
    except (lkapi.ServerError, *_UNCERTAIN_ERRORS) as error:
        _log("room not deleted: %s", call, error, level=logging.WARNING)


async def _resolve_interrupted_dial(call: CallRecord) -> None:
    """The call is `dialing` but this run did not dial: look at the room, never dial again."""
    participant = await find_sip_participant(
        worker_livekit(), call.room_name, participant_identity(call.id)
    )
    if participant is not None:
        _log("already dialed (participant %s present)", call, participant.sid)
        return
    await _fail(call, "DIAL_INTERRUPTED", "the dispatcher stopped before the dial was confirmed")


async def _dial_once(call: CallRecord) -> None:
    store = worker_store()
    client = worker_livekit()
    marked = await apply_event(
        store,
        call.id,
        EventSpec(
            "call.dialing", {"to": call.to, "from": call.get("from")}, expected_status="dispatching"
        ),
    )
    if not marked.applied:
        # Canceled (or moved on) between CreateRoom and now: nothing may ring.
        _log("not dialing, call is %s", call, marked.status)
        if marked.status == "canceled":
            await delete_room(client, call.room_name)
        return

    plan = SipLegPlan(
        room_name=call.room_name,
        sip_trunk_id=call.sip_trunk_id,
        caller_number=call.get("from"),
        callee_number=call.to,
        participant_identity=participant_identity(call.id),
        participant_name=call.to,
        participant_metadata=json.dumps({"call_id": call.id}),
        ringing_timeout_seconds=call.ring_timeout_seconds,
        max_call_duration_seconds=call.max_duration_seconds,
    )
    try:
        info = await dial(client, plan)
    except lkapi.ServerError as error:
        outcome = dial_error_outcome(error)
        await _fail(
            call,
            f"LIVEKIT_{error.code.upper()}",
            error.message or str(error),
            sip_status_code=outcome.sip_status_code,
            sip_status=outcome.sip_status,
        )
        return
    except _UNCERTAIN_ERRORS as error:
        # The request may or may not have reached LiveKit: the room tells which.
        _log("dial outcome unknown (%r), checking the room", call, error, level=logging.WARNING)
        await _resolve_interrupted_dial(call)
        return

    TIME_TO_DIAL.observe(max(0.0, time.time() - int(call.created_at) / 1000))
    pipe = store.redis.pipeline(transaction=False)
    pipe.hset(
        store.keys.call(call.id),
        mapping={"sip_call_id": info.sip_call_id, "sip_participant_id": info.participant_id},
    )
    pipe.hget(store.keys.call(call.id), "status")
    _, status = await pipe.execute()
    _log("dialed %s (sip call %s)", call, call.to, info.sip_call_id)
    if status == "canceled":
        # Canceled while the dial request was in flight: hang the new leg up at once.
        await delete_room(client, call.room_name)


async def dispatch(call_id: str) -> None:
    store = worker_store()
    # queued -> dispatching and the record, in one round trip (a `conflict` means another
    # run or a cancel got there first; the record says where the call is).
    _, raw = await apply_event_then_read(
        store, call_id, EventSpec("call.dispatching", expected_status="queued")
    )
    if not raw:
        logger.warning("dispatch for unknown call %s ignored", call_id, extra={"call_id": call_id})
        return
    call = CallRecord.from_hash(raw)
    status = call.get("status")
    if status == "dialing":
        await _resolve_interrupted_dial(call)
        return
    if status != "dispatching":
        _log("nothing to do, call is already %s", call, status)
        return

    metadata = dispatch_metadata(call)
    room = RoomPlan(
        name=call.room_name,
        agent_name=metadata.agent.worker_name,
        dispatch_metadata=metadata.to_json(),
        room_metadata=json.dumps({"call_id": call_id, "workspace_id": call.workspace_id}),
    )
    try:
        await ensure_room(worker_livekit(), room)
    except (lkapi.ServerError, *_UNCERTAIN_ERRORS) as error:
        code = error.code if isinstance(error, lkapi.ServerError) else "unavailable"
        await _fail(call, f"LIVEKIT_{code.upper()}", f"could not create the room: {error}")
        return
    await _dial_once(call)


@dramatiq.actor(
    queue_name=DIAL_QUEUE,
    actor_name=DISPATCH_ACTOR,
    max_retries=3,
    min_backoff=1_000,
    max_backoff=10_000,
    time_limit=120_000,
    on_retry_exhausted="dispatch_exhausted",
)
async def dispatch_call(call_id: str) -> None:
    with DISPATCH_DURATION.time():
        await dispatch(call_id)


@dramatiq.actor(queue_name=DIAL_QUEUE, max_retries=10)
async def dispatch_exhausted(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Every retry of a dispatch failed (e.g. Redis kept failing): end the call, visibly."""
    call = await get_call(worker_store(), message["args"][0])
    if call is None:
        return
    if call.get("status") == "dialing":
        await _resolve_interrupted_dial(call)
    elif not call.is_terminal:
        await _fail(call, "DISPATCH_FAILED", f"dispatch failed {retry_info.get('retries')} times")
