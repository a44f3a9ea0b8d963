"""The dial actors: queued -> dispatching -> room with the agent dispatch -> waiting for the
agent -> dialing -> one SIP leg.

Every step is safe to run again after a crash or a redelivery:
- `queued -> dispatching` is a compare-and-set; other states mean another run got further.
- CreateRoom is an upsert (retried on transient errors).
- `dispatching -> waiting_for_agent` and the agent's readiness are atomic scripts on the
  call: whichever comes second continues the call (the mark sees `agent_ready_at` and
  dials; readiness sees `waiting_for_agent` and queues `dial_call`). No thread waits.
- `-> dialing` is a compare-and-set taken *before* CreateSIPParticipant and records the
  run that took it (`dial_owner`), so only one run can ever send the dial. A run that finds
  the call `dialing` under its own token is the redelivery of a run that died: it looks at
  the room and never dials again. Any other run leaves the call to its owner (and to the
  reconciler, at the call's deadline). The dial step takes its first mark in the script
  that reads the call and its workspace's `disabled` flag (`api.store.dial_step`).
- CreateSIPParticipant goes through a client that never replays it (LiveKit Cloud's
  failover would ring the callee again).
- Call windows (`api.services.due_time`): before anything else, a `queued` call whose
  window is closed now, or closes before the agent-ready timeout (the dial goes out within
  it or never), goes back to `scheduled` until the next opening, in one script that allows
  exactly `queued -> scheduled` (`api/store/lua/reschedule_queued.lua`); the scheduler queues
  it again then. The admission script reads the window and changes nothing while one is
  there to check, so a call without a window is admitted in the round trip that reads it.
- Do not call (`api.store.dnc`): the admission reads the workspace's list for the call's
  number; a `queued` call whose number joined it since the accept ends `canceled`
  (`do_not_call`) before it takes a slot or a room.
- Pacing (`api.store.pacing`): a `queued` call is admitted first (its trunk's and
  workspace's slots taken) or left waiting for the pacer, which sends its dispatch again
  when a limit frees; `-> dialing` is taken only when the trunk's dial rate allows it, else
  the dial step is sent again after the wait (a delayed `dial_call` with the same token: of
  it and any redelivery, only the one whose compare-and-set applies dials).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import dramatiq
from livekit import api as lkapi
from redis.exceptions import RedisError

from agent_runtime.contract import TERMINAL_STATUSES
from api.jobs.call_plans import dispatch_metadata, participant_identity, room_plan, sip_leg_plan
from api.jobs.dial_turns import mark_dialing_in_turn
from api.jobs.resources import (
    worker_livekit,
    worker_room_admin_livekit,
    worker_single_shot_livekit,
    worker_store,
)
from api.livekit import LIVEKIT_ERRORS
from api.metrics import DISPATCH_DURATION, TIME_TO_DIAL
from api.services.call_end import count_call_end, drop_room, end_event
from api.services.call_windows import window_from_json
from api.services.due_time import reopening
from api.store.agent_wait import mark_waiting_for_agent
from api.store.base import Store
from api.store.call_record import CallRecord, CallUpdate
from api.store.calls import get_call
from api.store.clock import now_ms
from api.store.dial_step import dialing_event, read_and_mark_dialing
from api.store.dialing import record_dialed
from api.store.events import (
    ApplyResult,
    EventSpec,
    apply_event,
    apply_event_then_read_workspace,
)
from api.store.messages import DIAL_ACTOR, DIAL_QUEUE, DISPATCH_ACTOR
from api.store.pacing import CallWindowFields, PacedDial, admit, note_late_dial
from api.store.scheduled_calls import reschedule_queued_call
from sip import (
    CallOutcome,
    dial,
    dial_error_outcome,
    ensure_room,
    find_sip_participant,
    is_transient,
)

logger = logging.getLogger("outdial.dispatch")

_UNCERTAIN_ERRORS = (aiohttp.ClientError, TimeoutError)
# A dial leaving this much after its `dialing` mark (a busy loop) is noted with its real
# time, which the trunk's window counts.
_LATE_SEND_MS = 3


def _log(message: str, call: CallRecord, *args: Any, level: int = logging.INFO) -> None:
    extra = {"call_id": call.id, "workspace_id": call.workspace_id, "room": call.room_name}
    logger.log(level, message, *args, extra=extra)


async def end_call(call: CallRecord, event: EventSpec) -> None:
    """Apply the event that ends the call; drop its room when it applied (a call that moved
    on meanwhile is left to whoever moved it)."""
    result = await apply_event(worker_store(), call.id, event)
    count_call_end(result)
    _log("call ended: %s %s (%s)", call, event.type, event.data.get("reason"), result.outcome)
    if result.applied or result.status in TERMINAL_STATUSES:
        await drop_room(worker_livekit(), call.room_name, call.id)


async def fail_call(
    call: CallRecord, code: str, message: str, reason: str = "error", expected: str | None = None
) -> None:
    """End the call as failed with an error code and drop its room."""
    outcome = CallOutcome("failed", reason)
    await end_call(call, end_event(outcome, code=code, message=message, expected_status=expected))


async def _check_dial(call: CallRecord) -> None:
    """The call is `dialing` and its dial's outcome is unknown (a crash, a 5xx, a timeout):
    look at the room, never dial again. A leg may still join late (LiveKit answers
    CreateSIPParticipant once the leg is in the room), so an empty room decides nothing:
    the call's ring deadline does (the reconciler fails it `DIAL_INTERRUPTED` then)."""
    participant = await find_sip_participant(
        worker_room_admin_livekit(), call.room_name, participant_identity(call.id)
    )
    current = await get_call(worker_store(), call.id)
    if current is not None and current.is_terminal:
        # canceled meanwhile: whatever joined must go
        await drop_room(worker_livekit(), call.room_name, call.id)
        return
    if participant is not None:
        _log("already dialed (participant %s present)", call, participant.sid)
    else:
        _log("dial unconfirmed, no leg yet: the ring deadline decides", call)


async def _resume_dialing(call: CallRecord, token: str) -> None:
    """A run found the call `dialing`: only the owner's redelivery may look into it."""
    if call.dial_owner == token:
        await _check_dial(call)
    else:
        _log("dialing under another run, leaving it", call)


async def _dial_once(
    call: CallRecord,
    expected_status: str,
    token: str,
    reserved_turn_ms: int | None = None,
    first: PacedDial | None = None,
) -> None:
    """Mark the call `dialing` in its trunk's turn (`first`: the mark the dial step's read
    took already), then dial."""
    store = worker_store()
    event = dialing_event(call.to, call.from_number, token, expected_status)

    async def resend(turn_ms: int, delay_ms: int) -> None:
        # Off the event loop: an enqueue may wait out a Redis failover (api.jobs.wakeup),
        # which would hold every actor of the process meanwhile.
        args = (call.id, token, turn_ms)
        await asyncio.to_thread(dial_call.send_with_options, args=args, delay=delay_ms)

    paced: PacedDial | None = first
    if first is None or first.result is None:
        reserved = reserved_turn_ms if first is None else first.turn_ms
        paced = await mark_dialing_in_turn(store, call.id, event, reserved, resend)
    if paced is None or paced.result is None:
        return
    marked = paced.result
    if not marked.applied:
        # Canceled, failed or moved on since: nothing may ring.
        _log("not dialing, call is %s", call, marked.status)
        if marked.status in TERMINAL_STATUSES:
            await drop_room(worker_livekit(), call.room_name, call.id)
        return

    plan = sip_leg_plan(call)
    sent_at = now_ms()
    if sent_at - paced.marked_at_ms > _LATE_SEND_MS:
        try:
            await note_late_dial(store, call.id, call.sip_trunk_id, sent_at)
        except RedisError as error:
            # Only a refinement of the trunk's window: the call is marked, its dial goes out.
            _log("late dial not noted (%r)", call, error, level=logging.WARNING)
    try:
        info = await dial(worker_single_shot_livekit(), plan)
    except lkapi.ServerError as error:
        if is_transient(error):
            # A 5xx may come after LiveKit applied the dial: the room tells which.
            _log("dial answered %s, checking the room", call, error, level=logging.WARNING)
            await _check_dial(call)
            return
        outcome = dial_error_outcome(error)
        code = f"LIVEKIT_{error.code.upper()}"
        message = error.message or str(error)
        await end_call(
            call, end_event(outcome, code=code, message=message, expected_status="dialing")
        )
        return
    except _UNCERTAIN_ERRORS as error:
        # The request may or may not have reached LiveKit: the room tells which.
        _log("dial outcome unknown (%r), checking the room", call, error, level=logging.WARNING)
        await _check_dial(call)
        return

    TIME_TO_DIAL.observe(max(0.0, time.time() - int(call.created_at) / 1000))
    status = await record_dialed(store, call.id, info.sip_call_id, info.participant_id, sent_at)
    _log("dialed %s (sip call %s)", call, call.to, info.sip_call_id)
    if status in TERMINAL_STATUSES:
        # Canceled while the dial request was in flight: hang the new leg up at once.
        await drop_room(worker_livekit(), call.room_name, call.id)


async def _wait_for_agent(call: CallRecord, token: str) -> None:
    """Mark the call as waiting for its agent; dial now if the agent was faster."""
    wait = await mark_waiting_for_agent(worker_store(), call.id)
    marked = wait.marked
    if not marked.applied:
        _log("not waiting for the agent, call is %s", call, marked.status)
        if marked.status in TERMINAL_STATUSES:
            await drop_room(worker_livekit(), call.room_name, call.id)
        return
    if wait.agent_was_ready:
        await _dial_once(call, "waiting_for_agent", token)


def _canceled_before_dial(reason: str, status: str) -> EventSpec:
    """`call.canceled` of a call `status` ended before its dial, `reason` its end reason."""
    return EventSpec(
        "call.canceled",
        {"reason": reason},
        call_update=CallUpdate(end_reason=reason),
        expected_status=status,
    )


async def _cancel_disabled(call: CallRecord, status: str) -> None:
    """The operator disabled the call's workspace before it was dialed: end it `canceled`
    (`workspace_disabled`) and drop any room a previous run created; nobody is rung."""
    await end_call(call, _canceled_before_dial("workspace_disabled", status))


async def _cancel_listed(store: Store, call_id: str) -> None:
    """The call's number joined its workspace's do-not-call list after the accept: end it
    `canceled` (`do_not_call`) before anything else happens; nobody is rung. A `queued`
    call has no room yet, and its end gives back any slot it held."""
    result = await apply_event(store, call_id, _canceled_before_dial("do_not_call", "queued"))
    count_call_end(result)
    message = "call canceled: its number is on the do-not-call list (%s)"
    logger.info(message, result.outcome, extra={"call_id": call_id})


async def _outside_window(store: Store, call_id: str, found: CallWindowFields) -> bool:
    """Whether the call went back to `scheduled` because its window is closed now."""
    try:
        window = window_from_json(found.window)
    except (ValueError, KeyError):
        logger.warning(
            "unreadable call window %r ignored", found.window[:200], extra={"call_id": call_id}
        )
        return False
    due = reopening(window, found.to, now_ms(), found.ready_s)
    if due is None:
        return False
    result = await reschedule_queued_call(store, call_id, due)
    if result.applied:
        logger.info("call window closed: scheduled again", extra={"call_id": call_id})
    return result.applied


async def dispatch(call_id: str) -> None:
    store = worker_store()
    # One round trip for a call without a window; one with a window reads it first.
    admission = await admit(store, call_id)
    if admission.window is not None:
        if await _outside_window(store, call_id, admission.window):
            return
        admission = await admit(store, call_id, window_checked=True)
    if admission.outcome == "do_not_call":
        await _cancel_listed(store, call_id)
        return
    if not admission.may_dispatch:
        # Waiting (the pacer sends this job again at its turn), or gone.
        return
    # queued -> dispatching, the record and its workspace's `disabled` flag, in one round
    # trip (a `conflict` means another run or a cancel got there first; the record says
    # where the call is).
    _, found = await apply_event_then_read_workspace(
        store, call_id, EventSpec("call.dispatching", expected_status="queued")
    )
    call = found.call
    if call is None:
        logger.warning("dispatch for unknown call %s ignored", call_id, extra={"call_id": call_id})
        return
    if found.workspace_disabled and call.status in ("dispatching", "waiting_for_agent"):
        await _cancel_disabled(call, call.status)
        return
    # The dispatch message is the call's only one: its id (the call's job id) is its token.
    token = call.job_id
    status = call.status
    if status == "dialing":
        await _resume_dialing(call, token)
        return
    if status == "waiting_for_agent" and call.agent_ready_at is not None:
        # A redelivery after the mark: the agent was ready before it, so this run dials.
        await _dial_once(call, "waiting_for_agent", token)
        return
    if status != "dispatching":
        _log("nothing to do, call is already %s", call, status)
        return

    if call.agent is None:
        # Its snapshot does not parse (api.store.records): no agent can take the call.
        message = "the call's agent snapshot is unreadable"
        await fail_call(call, "INVALID_AGENT", message, "invalid_metadata", "dispatching")
        return
    room = room_plan(call, dispatch_metadata(call, call.agent))
    try:
        await ensure_room(worker_livekit(), room)
    except LIVEKIT_ERRORS as error:
        code = error.code if isinstance(error, lkapi.ServerError) else "unavailable"
        message = f"could not create the room: {error}"
        await fail_call(call, f"LIVEKIT_{code.upper()}", message, "livekit_error", "dispatching")
        return
    if call.dial_mode == "immediate":
        await _dial_once(call, "dispatching", token)
    else:
        await _wait_for_agent(call, token)


async def _end_unreadable(call_id: str, marked: ApplyResult) -> None:
    """The mark applied to a record that does not read as a call (a field missing): no dial
    can go out, so the call ends now instead of staying `dialing` to its deadline."""
    if not marked.applied:
        return
    outcome = CallOutcome("failed", "invalid_metadata")
    message = "the call's record is unreadable"
    event = end_event(outcome, code="INVALID_CALL", message=message, expected_status="dialing")
    count_call_end(await apply_event(worker_store(), call_id, event))
    logger.warning("call with an unreadable record ended", extra={"call_id": call_id})


async def dial_ready_call(call_id: str, token: str, reserved_turn_ms: int | None = None) -> None:
    """The agent reported ready while the call waited for it, or the dial's trunk turn
    (`reserved_turn_ms`) is near: dial (unless the workspace was disabled meanwhile)."""
    # The read and, for a call before its dial, the paced mark: one round trip.
    start = await read_and_mark_dialing(worker_store(), call_id, token, reserved_turn_ms)
    found = start.found
    call = found.call
    if call is None:
        if start.paced is not None and start.paced.result is not None:
            await _end_unreadable(call_id, start.paced.result)
        return
    status = call.status  # as read before the mark
    # A `dispatching` call in dial mode `immediate` has its room: `_dial_once` sent this
    # step again to wait for the trunk's dial turn.
    before_dial = status == "waiting_for_agent" or (
        status == "dispatching" and call.dial_mode == "immediate"
    )
    if before_dial and found.workspace_disabled:
        await _cancel_disabled(call, status)
    elif before_dial:
        await _dial_once(call, status, token, reserved_turn_ms, start.paced)
    elif status == "dialing":
        await _resume_dialing(call, token)


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


@dramatiq.actor(
    queue_name=DIAL_QUEUE,
    actor_name=DIAL_ACTOR,
    max_retries=3,
    min_backoff=1_000,
    max_backoff=10_000,
    time_limit=60_000,
)
async def dial_call(call_id: str, token: str, reserved_turn_ms: int | None = None) -> None:
    with DISPATCH_DURATION.time():
        await dial_ready_call(call_id, token, reserved_turn_ms)


@dramatiq.actor(queue_name=DIAL_QUEUE, max_retries=10)
async def dispatch_exhausted(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Every retry of a dispatch failed (e.g. Redis kept failing): end the call, visibly,
    unless it got past the dispatch (then its deadline looks after it)."""
    call = await get_call(worker_store(), message["args"][0])
    if call is None:
        return
    status = call.status
    if status in ("queued", "dispatching"):
        message_text = f"dispatch failed {retry_info.get('retries')} times"
        await fail_call(call, "DISPATCH_FAILED", message_text, expected=status)
