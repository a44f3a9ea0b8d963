"""Pacing in the store (api.store.pacing; the scripts admit.lua, pace.lua): admission,
waiting, release, the pacer's step and the paced dial, against real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from api.jobs.dial_turns import SENT_AHEAD_MS, SLEEP_TO_TURN_MS, mark_dialing_in_turn
from api.settings import Settings
from api.store.base import Store
from api.store.call_record import CallUpdate
from api.store.calls import accept_call, get_call
from api.store.events import EventSpec, apply_event, list_events
from api.store.pacing import PacerSteps, admit, mark_dialing, note_late_dial
from api.store.scripts import ADMIT_AHEAD_MS
from tests.test_store import draft

TRUNK = "ST_paced"


@pytest.fixture
def pacer(redis_only_settings: Settings) -> Iterator[PacerSteps]:
    steps = PacerSteps(redis_only_settings)
    yield steps
    steps.close()


async def limit_trunk(store: Store, **limits: float) -> None:
    await store.redis.hset(store.keys.trunk_limits(TRUNK), mapping=limits)


async def queued_call(store: Store, workspace: str = "ws_1") -> str:
    call = draft(sip_trunk_id=TRUNK, workspace_id=workspace)
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    return call.id


async def slot_holders(store: Store, workspace: str = "ws_1") -> tuple[set[str], set[str]]:
    trunk = await store.redis.zrange(store.keys.trunk_slots(TRUNK), 0, -1)
    ws = await store.redis.zrange(store.keys.workspace_slots(workspace), 0, -1)
    return set(trunk), set(ws)


async def waiting_events(store: Store, call_id: str) -> list[dict[str, Any]]:
    return [e for e in await list_events(store, call_id) if e["type"] == "call.waiting"]


async def dispatch_messages(store: Store) -> list[str]:
    """The calls of the dispatch messages the pacer wrote (the accept wrote the others)."""
    ids = [i for i in await store.redis.lrange(store.dial_queue.ids, 0, -1) if "pacer-" in i]
    bodies = [await store.redis.hget(store.dial_queue.messages, i) for i in ids]
    return [json.loads(b)["args"][0] for b in bodies if b and "dispatch_call" in b]


async def cancel(store: Store, call_id: str) -> Any:
    return await apply_event(store, call_id, EventSpec("call.canceled", {"reason": "test"}))


async def test_admission_takes_both_slots_once_with_a_lease(store: Store) -> None:
    call_id = await queued_call(store)
    assert (await admit(store, call_id)).outcome == "admitted"
    # A redelivered job finds the slots taken by its call and passes, taking nothing more.
    assert (await admit(store, call_id)).outcome == "pass"
    assert await slot_holders(store) == ({call_id}, {call_id})
    lease = await store.redis.zscore(store.keys.trunk_slots(TRUNK), call_id)
    # dispatch 120 + ready 15 + ring 30 + duration 600 + grace 10 + 3 x margin 20, from now
    assert lease is not None and abs(lease - (time.time() + 835) * 1000) < 5000


async def test_a_call_with_a_window_is_handed_its_window_before_anything_changes(
    store: Store,
) -> None:
    """The dispatcher checks a call's window first (Python's time zones): admission hands
    it the window and takes nothing until told the window was checked."""
    window = '{"days":["mon"],"start":"09:00","end":"17:00"}'
    call = draft(sip_trunk_id=TRUNK, call_window=window)
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    before = await store.redis.hgetall(store.keys.call(call.id))
    found = await admit(store, call.id)
    assert found.outcome == "window" and not found.may_dispatch
    assert found.window is not None
    assert (found.window.window, found.window.to) == (window, call.to)
    assert found.window.ready_s == call.budgets.agent_ready_timeout_s
    assert await store.redis.hgetall(store.keys.call(call.id)) == before
    assert await slot_holders(store) == (set(), set())
    assert (await admit(store, call.id, window_checked=True)).outcome == "admitted"
    assert await slot_holders(store) == ({call.id}, {call.id})


async def test_a_call_over_the_trunk_limit_waits_with_its_waiting_deadline(store: Store) -> None:
    await limit_trunk(store, max_concurrent_calls=1)
    first, second = await queued_call(store), await queued_call(store)
    assert (await admit(store, first)).outcome == "admitted"
    held = await admit(store, second)
    assert (held.outcome, held.reason) == ("waiting", "trunk_concurrency")
    assert (await admit(store, second)).outcome == "waiting"  # a redelivery: still waiting
    call = await store.redis.hgetall(store.keys.call(second))
    assert call["waiting_for"] == "trunk_concurrency" and int(call["waiting_since"]) > 0
    assert [e["data"] for e in await waiting_events(store, second)] == [
        {"reason": "trunk_concurrency"}
    ]
    # waiting budget 3600 s + margin 20 s from when it started waiting
    deadline = await store.redis.zscore(store.keys.deadlines(), second)
    assert deadline == int(call["waiting_since"]) + 3_620_000
    assert await slot_holders(store) == ({first}, {first})


async def test_an_expired_lease_follows_a_live_calls_deadline_and_frees_an_ended_ones(
    store: Store,
) -> None:
    await limit_trunk(store, max_concurrent_calls=2)
    await store.redis.hset(store.keys.workspace("ws_1"), "max_concurrent_calls", 5)
    live, ended, waiting = (
        await queued_call(store),
        await queued_call(store),
        await queued_call(store),
    )
    assert (await admit(store, live)).outcome == "admitted"
    assert (await admit(store, ended)).outcome == "admitted"
    # Both leases ran out; `ended` lost its deadline without a release (a crash between).
    past = int(time.time() * 1000) - 1000
    for key in (store.keys.trunk_slots(TRUNK), store.keys.workspace_slots("ws_1")):
        await store.redis.zadd(key, {live: past, ended: past})
    await store.redis.zrem(store.keys.deadlines(), ended)
    live_deadline = await store.redis.zscore(store.keys.deadlines(), live)
    assert live_deadline is not None

    # The next admission looks: the live call keeps its slot, the ended one's is free.
    assert (await admit(store, waiting)).outcome == "admitted"
    assert await slot_holders(store) == ({live, waiting}, {live, waiting})
    lease = await store.redis.zscore(store.keys.trunk_slots(TRUNK), live)
    assert lease == max(live_deadline, past) + 60_000
    # /metrics still finds the trunk through its index.
    indexed = await store.redis.zscore(store.keys.pacing_leased_trunks(), TRUNK)
    assert indexed is not None and indexed >= lease


async def test_the_workspace_limit_holds_its_calls_only(store: Store) -> None:
    await store.redis.hset(store.keys.workspace("ws_small"), "max_concurrent_calls", 1)
    small = [await queued_call(store, "ws_small") for _ in range(2)]
    other = await queued_call(store, "ws_other")
    assert (await admit(store, small[0])).outcome == "admitted"
    assert (await admit(store, small[1])).reason == "workspace_concurrency"
    assert (await admit(store, other)).outcome == "admitted"


async def test_a_trunk_rate_spaces_admissions(store: Store) -> None:
    await limit_trunk(store, max_calls_per_second=2)
    first, second = await queued_call(store), await queued_call(store)
    assert (await admit(store, first)).outcome == "admitted"
    assert (await admit(store, second)).reason == "trunk_rate"
    # The next admission is one turn later: (1000 + 20 guard) / 2 = 510 ms.
    look = await store.redis.zscore(store.keys.pacing_trunks(), TRUNK)
    assert look is not None and look <= time.time() * 1000 + 510
    # The trunk became due sooner than any pacer knew: one is woken to sleep to it.
    assert await store.redis.lrange(store.keys.pacing_wake(), 0, -1) == ["1"]


async def test_a_high_rate_admits_a_burst_of_dispatches_ahead_of_their_turns(
    store: Store,
) -> None:
    """A backlog's concurrent dispatches on a fast trunk: admitted up to `ADMIT_AHEAD_MS`
    ahead of their turns (the dial's turns keep the rate) instead of each one parked a turn
    behind the last, which made a whole backlog wait for the pacer (issue 24)."""
    await limit_trunk(store, max_calls_per_second=1000)
    turn_ms = (1000 + store.settings.trunk_rate_guard_ms) / 1000
    burst = [await queued_call(store) for _ in range(16)]
    before = int(time.time() * 1000)  # whole ms, as the store's clock reads them
    admissions = [await admit(store, call_id) for call_id in burst]
    assert [a.outcome for a in admissions] == ["admitted"] * 16
    # ... but no further ahead: the admissions' turns stay spaced by the rate.
    tat = float(await store.redis.get(f"{store.keys.prefix}:pacing:trunk:{TRUNK}:admit-tat"))
    assert tat >= before + 16 * turn_ms - 0.01
    await store.redis.set(
        f"{store.keys.prefix}:pacing:trunk:{TRUNK}:admit-tat",
        time.time() * 1000 + ADMIT_AHEAD_MS + 1000,
    )
    held = await admit(store, await queued_call(store))
    assert held.reason == "trunk_rate"


async def test_the_end_releases_the_slots_once_and_wakes_the_pacer(
    store: Store, pacer: PacerSteps
) -> None:
    await limit_trunk(store, max_concurrent_calls=1)
    first, second = await queued_call(store), await queued_call(store)
    await admit(store, first)
    await admit(store, second)
    assert (await cancel(store, first)).applied
    assert await slot_holders(store) == (set(), set())
    assert await store.redis.lrange(store.keys.pacing_wake(), 0, -1) == ["1"]
    assert pacer.wait_for_wake(0.01)
    # A second end is stale: it changes nothing, wakes nobody.
    assert (await cancel(store, first)).outcome == "stale"
    assert not pacer.wait_for_wake(0.01)

    assert pacer.step(everything=False)[0] == 1
    assert await slot_holders(store) == ({second}, {second})
    assert await dispatch_messages(store) == [second]
    assert await store.redis.zscore(store.keys.deadlines(), second) is not None
    assert "waiting_for" not in await store.redis.hgetall(store.keys.call(second))
    # Nobody waits any more: the trunk leaves the pacer's set.
    assert await store.redis.zscore(store.keys.pacing_trunks(), TRUNK) is None
    # The pacer's dispatch finds its slots taken and passes.
    assert (await admit(store, second)).outcome == "pass"


async def test_a_waiting_call_canceled_leaves_its_queue(store: Store, pacer: PacerSteps) -> None:
    await limit_trunk(store, max_concurrent_calls=1)
    first, second = await queued_call(store), await queued_call(store)
    await admit(store, first)
    await admit(store, second)
    assert (await cancel(store, second)).applied
    assert await store.redis.exists(store.keys.trunk_waiting(TRUNK, "ws_1")) == 0
    assert await store.redis.exists(store.keys.trunk_turns(TRUNK)) == 0
    await cancel(store, first)
    pacer.step(everything=True)
    assert await dispatch_messages(store) == []
    assert await slot_holders(store) == (set(), set())


async def test_a_waiting_call_shows_the_limit_that_holds_it_now(
    store: Store, pacer: PacerSteps
) -> None:
    """Held by its trunk's concurrency, then (the trunk freed) by its workspace's: the
    pacer's step gives it the new reason, with one `call.waiting`, and says it once."""
    await limit_trunk(store, max_concurrent_calls=1)
    await store.redis.hset(store.keys.workspace("ws_1"), "max_concurrent_calls", 1)
    other = await queued_call(store, workspace="ws_2")
    assert (await admit(store, other)).outcome == "admitted"
    waiting = await queued_call(store)
    assert (await admit(store, waiting)).reason == "trunk_concurrency"
    elsewhere = draft(sip_trunk_id="ST_elsewhere", workspace_id="ws_1")
    assert (await accept_call(store, elsewhere, {"callId": elsewhere.id}, None)).created
    assert (await admit(store, elsewhere.id)).outcome == "admitted"  # ws_1 is full now
    await cancel(store, other)  # the trunk is free: only ws_1's own limit holds the call
    assert pacer.step(everything=True)[0] == 0
    call = await store.redis.hgetall(store.keys.call(waiting))
    assert call["waiting_for"] == "workspace_concurrency"
    reasons = [e["data"]["reason"] for e in await waiting_events(store, waiting)]
    assert reasons == ["trunk_concurrency", "workspace_concurrency"]
    pacer.step(everything=True)
    assert len(await waiting_events(store, waiting)) == 2
    # The waiting call's event is relayed like any other (its feed and sequence are the
    # apply script's): it follows the ones before it.
    sequences = [e["sequence"] for e in await list_events(store, waiting)]
    assert sequences == list(range(1, len(sequences) + 1))


async def test_a_rate_holding_waiting_calls_for_a_turn_leaves_their_reason(
    store: Store, pacer: PacerSteps
) -> None:
    """A trunk at both its limits: when a slot frees and the rate holds the next admission
    for a turn, the waiting calls keep their concurrency reason (no `call.waiting` storm
    at every admission)."""
    await limit_trunk(store, max_concurrent_calls=1, max_calls_per_second=1)
    holder = await queued_call(store, "ws_2")
    assert (await admit(store, holder)).outcome == "admitted"
    waiting = await queued_call(store)
    assert (await admit(store, waiting)).reason == "trunk_concurrency"
    await cancel(store, holder)  # the slot frees; the rate's next turn is ~1 s off
    pacer.step(everything=True)
    call = await store.redis.hgetall(store.keys.call(waiting))
    assert call["status"] == "queued" and call["waiting_for"] == "trunk_concurrency"
    assert [e["data"]["reason"] for e in await waiting_events(store, waiting)] == [
        "trunk_concurrency"
    ]


async def test_the_pacer_serves_workspaces_in_turn(store: Store, pacer: PacerSteps) -> None:
    await limit_trunk(store, max_concurrent_calls=1)
    holder = await queued_call(store, "ws_busy")
    await admit(store, holder)
    burst = [await queued_call(store, "ws_busy") for _ in range(30)]
    for call_id in burst:
        await admit(store, call_id)
    single = await queued_call(store, "ws_single")
    assert (await admit(store, single)).reason == "trunk_concurrency"

    admitted: list[str] = []
    running = holder
    for _ in range(3):
        await cancel(store, running)
        assert pacer.step(everything=True)[0] == 1
        running = (await dispatch_messages(store))[-1]
        admitted.append(running)
    # The single call goes at the first or second opening, not after the burst's 30.
    assert single in admitted[:2]
    # Each workspace's own calls keep their order.
    busy = [c for c in admitted if c != single]
    assert busy == burst[: len(busy)]


async def test_an_admission_a_little_late_keeps_the_schedule(store: Store) -> None:
    """A pacer step wakes some ms after the opening: the next opening stays one turn after
    the one it woke for, so the lateness of steps does not add up over a backlog (up to
    four turns late; the dial's turns keep the trunk's rate)."""
    await limit_trunk(store, max_calls_per_second=2)
    opening = int(time.time() * 1000) - 30  # the turn opened 30 ms ago
    await store.redis.set(f"{store.keys.prefix}:pacing:trunk:{TRUNK}:admit-tat", opening)
    assert (await admit(store, await queued_call(store))).outcome == "admitted"
    assert (
        float(await store.redis.get(f"{store.keys.prefix}:pacing:trunk:{TRUNK}:admit-tat"))
        == opening + 510
    )
    # Idle for longer than four turns: the schedule starts again from now.
    await store.redis.set(f"{store.keys.prefix}:pacing:trunk:{TRUNK}:admit-tat", opening - 2100)
    before = int(time.time() * 1000)  # whole ms, as the store's clock reads them
    assert (await admit(store, await queued_call(store))).outcome == "admitted"
    assert (
        float(await store.redis.get(f"{store.keys.prefix}:pacing:trunk:{TRUNK}:admit-tat"))
        >= before + 510
    )


def dialing(token: str) -> EventSpec:
    return EventSpec(
        "call.dialing", expected_status="queued", call_update=CallUpdate(dial_owner=token)
    )


async def test_dials_reserve_turns_in_order_and_keep_them(store: Store) -> None:
    await limit_trunk(store, max_calls_per_second=20)
    first, second, third = [await queued_call(store) for _ in range(3)]
    before = int(time.time() * 1000)
    assert (await mark_dialing(store, first, dialing("a"))).result is not None
    # (1000 + 20 guard) / 20 = 51 ms apart: the next two dials reserve the next two turns.
    held = await mark_dialing(store, second, dialing("b"))
    later = await mark_dialing(store, third, dialing("c"))
    after = int(time.time() * 1000)
    assert held.result is None and later.result is None
    assert before + 51 <= held.turn_ms <= after + 51
    assert later.turn_ms == held.turn_ms + 51
    record = await get_call(store, second)
    assert record is not None and record.status == "queued" and record.dial_owner is None

    # Back before its turn (its step was sent to arrive early), it keeps waiting for it.
    early = await mark_dialing(store, second, dialing("b"), held.turn_ms)
    assert early.result is None and early.turn_ms == held.turn_ms
    # Back at its turn with its reservation, the second dial goes; a reservation is not a
    # second turn: a fourth dial's turn comes after the third's.
    time.sleep(max(0, held.turn_ms - time.time() * 1000) / 1000)
    done = await mark_dialing(store, second, dialing("b"), held.turn_ms)
    assert done.result is not None and done.result.applied
    fourth = await mark_dialing(store, await queued_call(store), dialing("d"))
    assert fourth.turn_ms == later.turn_ms + 51


async def test_the_window_holds_a_dial_even_at_its_turn(store: Store) -> None:
    """2.5 calls/s: turns 408 ms apart would put 3 dials in one second; the window allows
    2 in any 1,020 ms, whatever the turns say."""
    await limit_trunk(store, max_calls_per_second=2.5)
    calls = [await queued_call(store) for _ in range(3)]
    marks: list[int] = []
    for index, call_id in enumerate(calls):
        reserved: int | None = None
        while True:
            paced = await mark_dialing(store, call_id, dialing(str(index)), reserved)
            if paced.result is not None:
                assert paced.result.applied
                break
            reserved = paced.turn_ms
            time.sleep(max(0.0, reserved - time.time() * 1000) / 1000)
    for call_id in calls:  # the `dialing` marks, on the script's clock
        record = await get_call(store, call_id)
        assert record is not None
        marks.append(record.transitions["dialing"])
    assert marks[2] - marks[0] >= 1020
    assert marks[1] - marks[0] >= 408


async def test_a_dial_sent_late_is_counted_from_when_it_left(store: Store) -> None:
    await limit_trunk(store, max_calls_per_second=1)
    first, second = await queued_call(store), await queued_call(store)
    marked = await mark_dialing(store, first, dialing("a"))
    assert marked.result is not None and marked.result.applied
    # Its worker was busy: the dial left 300 ms after its mark.
    await note_late_dial(store, first, TRUNK, marked.marked_at_ms + 300)
    held = await mark_dialing(store, second, dialing("b"))
    assert held.turn_ms >= marked.marked_at_ms + 1020  # the next turn, (1000 + 20) / 1
    time.sleep(max(0, held.turn_ms - time.time() * 1000) / 1000)
    # At its turn the window still holds it: one dial per 1,020 ms from when the first left.
    again = await mark_dialing(store, second, dialing("b"), held.turn_ms)
    assert again.result is None and again.turn_ms == marked.marked_at_ms + 300 + 1020
    # A call that is not in the window (no rate, or never dialed) is not added to it.
    await note_late_dial(store, second, TRUNK, marked.marked_at_ms + 400)
    assert await store.redis.zrange(store.keys.trunk_dial_log(TRUNK), 0, -1) == [first]


async def test_a_dial_step_hands_a_far_turn_on_and_dials_at_it(store: Store) -> None:
    await limit_trunk(store, max_calls_per_second=1)
    first, second = await queued_call(store), await queued_call(store)
    started = int(time.time() * 1000)
    assert (await mark_dialing(store, first, dialing("a"))).result is not None
    resent: list[tuple[int, int]] = []

    async def resend(turn_ms: int, delay_ms: int) -> None:
        resent.append((turn_ms, delay_ms))

    # Its turn is 1,020 ms off: no thread sleeps that long, a later step gets the turn.
    before = int(time.time() * 1000)  # whole ms, as the store's clock reads them
    assert await mark_dialing_in_turn(store, second, dialing("b"), None, resend) is None
    after = int(time.time() * 1000) + 1
    [(turn, delay)] = resent
    # sent to arrive SENT_AHEAD_MS before the turn (1000 + 20 guard ms after the first dial)
    assert before + delay <= turn - SENT_AHEAD_MS <= after + delay
    assert started + 1020 - 1 <= turn <= after + 1020
    record = await get_call(store, second)
    assert record is not None and record.status == "queued"
    # That step arrives early with the turn: it sleeps to it, then dials, never before.
    time.sleep(delay / 1000)
    paced = await mark_dialing_in_turn(store, second, dialing("b"), turn, resend)
    assert paced is not None and paced.result is not None and paced.result.applied
    assert paced.marked_at_ms >= turn and len(resent) == 1


def test_a_rate_is_unlimited_or_at_least_one_call_per_100_seconds() -> None:
    assert Settings(OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND=0).trunk_max_calls_per_second == 0
    assert Settings(OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND=0.01).trunk_max_calls_per_second == 0.01
    with pytest.raises(ValidationError, match="OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND"):
        Settings(OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND=1e-20)


def test_a_call_admitted_ahead_reaches_its_dial_turn_by_the_steps_sleep() -> None:
    # Admitted at most ADMIT_AHEAD_MS before its turn, a dial step sleeps to the turn
    # rather than sending itself again (api/jobs/dial_turns.py).
    assert ADMIT_AHEAD_MS <= SLEEP_TO_TURN_MS
