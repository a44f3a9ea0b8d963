"""The reconciler: a call whose deadline passed is checked against LiveKit and settled.

`reconcile_call` messages come from the `call-deadlines` schedule (`api.jobs.due_claimer`),
which keeps each claimed deadline one lease later: if this job dies, the call comes back.
The message carries that lease's score: when the call's entry moved since (it changed state
and got a new deadline, or another claim took it), the claim is stale and nothing is done.
A failed look at LiveKit is counted and left to the lease; a call that nobody was rung for
(`waiting_for_agent`) does not wait for LiveKit to answer: it fails as no agent ready.
The plan (`api.services.reconcile.settle`) either ends the call (its deadline goes with the
terminal step), moves it on (the new status brings its own deadline), queues its dial, or
pushes the deadline. Nothing here dials: the dial step's compare-and-set stays the only way.
"""

from __future__ import annotations

import logging
import time

import dramatiq

from api.jobs.call_plans import participant_identity
from api.jobs.resources import worker_livekit, worker_room_admin_livekit, worker_store
from api.livekit import LIVEKIT_ERRORS
from api.metrics import CALLS_RECONCILED, RECONCILE_ERRORS, WEBHOOKS_MISSED
from api.services.call_end import count_call_end, drop_room
from api.services.reconcile import ROOM_STATUSES, RoomSnapshot, Settlement, settle
from api.store.call_record import CallRecord
from api.store.calls import get_call
from api.store.deadlines import deadline_of, forget_deadline, push_deadline, queue_dial
from api.store.events import EventSpec, apply_event, mark_agent_ready
from api.store.messages import RECONCILE_ACTOR, RECONCILE_QUEUE
from api.store.webhooks import note_webhooks_missed
from sip import RetryPolicy, list_participants

logger = logging.getLogger("outdial.reconcile")


# Short: the lease brings a failed look back; a long retry would outlive the lease.
_LOOK_POLICY = RetryPolicy(attempts=2)


async def _look_at_room(call: CallRecord) -> RoomSnapshot:
    client = worker_room_admin_livekit()
    participants = await list_participants(client, call.room_name, _LOOK_POLICY)
    return RoomSnapshot.of(participants, participant_identity(call.id))


async def _carry_out(call: CallRecord, plan: Settlement) -> str:
    store = worker_store()
    if plan.dial:
        if call.agent_ready_at is not None:
            await queue_dial(store, call.id)
        else:
            seen = EventSpec("agent.ready", {"source": "reconciler"})
            await mark_agent_ready(store, call.id, seen)
        return "dial"
    if plan.event is not None:
        result = await apply_event(store, call.id, plan.event)
        count_call_end(result)
        if not result.applied:
            return "moved_on"  # a webhook or the agent got there first
    if plan.drop_room:
        await drop_room(worker_livekit(), call.room_name, call.id)
    if plan.next_deadline_ms is not None:
        await push_deadline(store, call.id, plan.next_deadline_ms)
    if plan.unreported:
        await note_webhooks_missed(store)
        WEBHOOKS_MISSED.inc()
        logger.warning(
            "call %s settled from LiveKit's state: its webhooks never reached the API "
            "(check LiveKit's webhook URL: it must reach /v1/livekit/webhook)",
            call.id,
            extra={"call_id": call.id},
        )
    if plan.event is not None:
        return plan.event.type
    return "extended" if plan.next_deadline_ms is not None else "nothing"


async def reconcile(call_id: str, claim: int | None = None) -> None:
    store = worker_store()
    if claim is not None:
        deadline = await deadline_of(store, call_id)
        if deadline is not None and deadline != claim:
            return  # the call moved on since the claim: its new deadline is in the set
    call = await get_call(store, call_id)
    if call is None or call.is_terminal:
        await forget_deadline(store, call_id)
        return
    status = call.status
    room = None
    if status in ROOM_STATUSES:
        try:
            room = await _look_at_room(call)
        except LIVEKIT_ERRORS as error:
            RECONCILE_ERRORS.inc()
            if status != "waiting_for_agent":
                logger.warning(
                    "cannot look at the room of a %s call (%s): next lease", status, error,
                    extra={"call_id": call_id},
                )  # fmt: skip
                return
            room = RoomSnapshot(None, has_agent=False)  # nobody rung: fail it, safely
    plan = settle(call, room, int(time.time() * 1000))
    action = await _carry_out(call, plan)
    CALLS_RECONCILED.labels(status, action).inc()
    logger.info("reconciled a %s call: %s", status, action, extra={"call_id": call_id})


@dramatiq.actor(
    queue_name=RECONCILE_QUEUE,
    actor_name=RECONCILE_ACTOR,
    # The deadline's lease brings a failed check back; retries would only race it.
    max_retries=0,
    time_limit=60_000,
)
async def reconcile_call(call_id: str, claim: str = "") -> None:
    await reconcile(call_id, int(claim) if claim.isdigit() else None)
