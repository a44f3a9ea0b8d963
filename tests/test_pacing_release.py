"""A call's end gives back its pacing slots, whichever way it ends (the terminal branch of
`api/store/lua/lib/apply_event.lua`, `release_slots`), against real Redis.

Every terminal status of the contract, through every end step the store offers: the
apply script as the dispatcher, the reconciler, LiveKit's webhooks and the agent's events
run it (`apply_event`, and the dispatcher's read-back forms) and the API's cancel step
(`cancel_call_event`). A call admitted by the real admission holds a trunk slot and a
workspace slot until then; a call still waiting for them holds a place in its trunk's
waiting set. After the end, neither is left. tests/test_pacing_slots.py proves the same end
to end for the ends a worker makes (a failed dial, no answer, cancel, the reconciler, a
killed worker); this module covers each status the store can be told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from agent_runtime.contract import TERMINAL_STATUSES
from api.services.call_end import end_event
from api.store.base import Store
from api.store.call_record import CallUpdate
from api.store.events import (
    ApplyResult,
    EventSpec,
    apply_event,
    apply_event_then_read_workspace,
)
from api.store.pacing import admit
from api.store.scheduled_calls import cancel_call_event
from sip import CallOutcome
from tests.test_pacing_store import TRUNK, limit_trunk, queued_call, slot_holders

WS = "ws_1"  # the workspace of `queued_call`

# Why an admitted call ends with each status, and the status it is in just before: a new
# terminal status in the contract fails here until it is given its end.
END_REASON = {
    "completed": "hangup_by_callee",
    "no_answer": "no_answer",
    "busy": "busy",
    "failed": "trunk_failure",
    "canceled": "canceled_by_client",
}
ENDED_FROM = {
    "completed": "in_progress",
    "no_answer": "ringing",
    "busy": "ringing",
    "failed": "dialing",
    "canceled": "waiting_for_agent",
}
# The events that take an admitted call forward, in order, and the status each leaves.
FORWARD = (
    ("call.dispatching", "dispatching"),
    ("call.waiting_for_agent", "waiting_for_agent"),
    ("call.dialing", "dialing"),
    ("call.ringing", "ringing"),
    ("call.answered", "in_progress"),
)


def end_of(status: str, read_status: str) -> EventSpec:
    """The event that ends a call in `read_status` with `status`, as Outdial writes it."""
    reason = END_REASON[status]
    if status == "canceled":
        update = CallUpdate(end_reason=reason)
        return EventSpec("call.canceled", {"reason": reason}, call_update=update)
    outcome = CallOutcome(status, reason)  # type: ignore[arg-type]
    return end_event(outcome, expected_status=read_status)


EndStep = Callable[[Store, str, EventSpec], Awaitable[ApplyResult]]


async def _then_read_workspace(store: Store, call_id: str, event: EventSpec) -> ApplyResult:
    return (await apply_event_then_read_workspace(store, call_id, event))[0]


END_STEPS: dict[str, EndStep] = {
    "apply_event": apply_event,
    "apply_event_then_read_workspace": _then_read_workspace,
    "cancel_call_event": cancel_call_event,
}

ENDS = pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
STEPS = pytest.mark.parametrize("step", sorted(END_STEPS))


async def _move_to(store: Store, call_id: str, target: str) -> None:
    for event_type, status in FORWARD:
        assert (await apply_event(store, call_id, EventSpec(event_type))).applied
        if status == target:
            return


async def _waiting_set(store: Store) -> list[str]:
    return list(await store.redis.zrange(store.keys.trunk_waiting(TRUNK, WS), 0, -1))


@ENDS
@STEPS
async def test_an_admitted_call_gives_both_slots_back_at_its_end(
    store: Store, status: str, step: str
) -> None:
    call_id = await queued_call(store)
    assert (await admit(store, call_id)).outcome == "admitted"
    await _move_to(store, call_id, ENDED_FROM[status])
    assert await slot_holders(store) == ({call_id}, {call_id})

    ended = await END_STEPS[step](store, call_id, end_of(status, ENDED_FROM[status]))
    assert (ended.outcome, ended.status) == ("applied", status)
    assert await slot_holders(store) == (set(), set())
    assert await _waiting_set(store) == []


@ENDS
@STEPS
async def test_a_call_still_waiting_leaves_the_waiting_set_at_its_end(
    store: Store, status: str, step: str
) -> None:
    await limit_trunk(store, max_concurrent_calls=1)
    holder, waiting = await queued_call(store), await queued_call(store)
    assert (await admit(store, holder)).outcome == "admitted"
    assert (await admit(store, waiting)).outcome == "waiting"
    assert await _waiting_set(store) == [waiting]

    ended = await END_STEPS[step](store, waiting, end_of(status, "queued"))
    assert (ended.outcome, ended.status) == ("applied", status)
    assert await _waiting_set(store) == []
    assert await store.redis.exists(store.keys.trunk_turns(TRUNK)) == 0
    # the call that holds the slots keeps them: only the ended call's place went
    assert await slot_holders(store) == ({holder}, {holder})
