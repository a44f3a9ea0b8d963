"""Minute balances in the store (`api/store/lua/lib/reservation.lua`), against real Redis:
the accept's reservation, the end's settlement, extensions and the day's usage.

Times of an answer and an end are given to the apply script itself (its `now` argument),
so "answered at T, ended at T + 75 s" is exact without waiting 75 s.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import redis
from prometheus_client import REGISTRY

from api.services.call_end import count_call_end
from api.settings import Settings
from api.store.base import Store
from api.store.billing import (
    RESERVE_SECONDS,
    add_credits,
    balances,
    extend_reservation,
    remove_balance,
    usage_by_day,
)
from api.store.call_record import CallBudgets, CallDraft
from api.store.calls import accept_call, get_call
from api.store.clock import now_ms
from api.store.events import (
    ApplyEvent,
    ApplyResult,
    EventSpec,
    apply_args,
    apply_result,
    event_keys,
)
from api.store.scheduled_calls import Due, accept_scheduled_call
from api.store.scripts import DAY_MS
from api.store.workspaces import create_workspace
from tests import test_store
from tests.support import redis_snapshot

# test_store's: a store on a prefix of its own, and a call draft of workspace WS
store = test_store.store
draft = test_store.draft
WS = "ws_1"  # the workspace of `draft()`


async def balance(store: Store) -> int | None:
    raw = await store.redis.get(store.keys.balance(WS))
    return None if raw is None else int(raw)


async def add_credits_raw(store: Store, seconds: int) -> None:
    """Credits for `draft()`'s workspace, which has no workspace record in these tests."""
    await store.redis.incrby(store.keys.balance(WS), seconds)


async def apply_at(store: Store, call_id: str, event: EventSpec, at_ms: int) -> ApplyResult:
    """The real apply script, with `at_ms` as its clock."""
    args = apply_args(store, event, at_ms, call_id)
    reply = await store.run(ApplyEvent(event_keys=event_keys(store, call_id), event=args))
    return apply_result(reply, args.new_status)


def per_minute(call: CallDraft) -> CallDraft:
    budgets = dataclasses.replace(call.budgets, billing_increment_s=60)
    return dataclasses.replace(call, budgets=budgets)


async def test_50_concurrent_accepts_on_a_balance_for_10_accept_exactly_10(store: Store) -> None:
    await add_credits_raw(store, 10 * RESERVE_SECONDS)
    calls = [draft() for _ in range(50)]
    outcomes = await asyncio.gather(*(accept_call(store, c, {"callId": c.id}, None) for c in calls))
    accepted = [c for c, o in zip(calls, outcomes, strict=True) if o.created]
    refused = [o for o in outcomes if not o.created]
    assert len(accepted) == 10
    assert all(0 <= (o.balance_short or 0) < RESERVE_SECONDS for o in refused)
    assert await balance(store) == 0
    for call in accepted:
        record = await get_call(store, call.id)
        assert record is not None and record.reserved_s == RESERVE_SECONDS
    # A refused call left nothing: no record, no index entry, no dispatch message.
    assert await store.redis.zcard(store.keys.calls(WS)) == 10
    assert await store.redis.llen(store.dial_queue.ids) == 10


async def test_a_refused_accept_writes_nothing(store: Store, redis_client: redis.Redis) -> None:
    await add_credits_raw(store, RESERVE_SECONDS - 1)
    before = redis_snapshot(redis_client, store.keys.prefix)
    now = await accept_call(store, draft(), {}, None)
    later = await accept_scheduled_call(
        store, draft(), {}, None, Due(now_ms() + 3_600_000, "scheduled_time")
    )
    assert (now.created, now.balance_short) == (False, RESERVE_SECONDS - 1)
    assert (later.created, later.balance_short) == (False, RESERVE_SECONDS - 1)
    assert redis_snapshot(redis_client, store.keys.prefix) == before


async def test_a_scheduled_accept_reserves_and_its_cancel_gives_it_all_back(store: Store) -> None:
    await add_credits_raw(store, 2 * RESERVE_SECONDS)
    call = draft()
    due = Due(now_ms() + 3_600_000, "scheduled_time")
    assert (await accept_scheduled_call(store, call, {}, None, due)).created
    assert await balance(store) == RESERVE_SECONDS
    canceled = await apply_at(store, call.id, EventSpec("call.canceled", {"reason": "r"}), now_ms())
    assert (canceled.ended, canceled.billed_seconds) == (True, 0)
    assert await balance(store) == 2 * RESERVE_SECONDS


async def test_an_idempotent_replay_reserves_nothing_more(store: Store) -> None:
    await add_credits_raw(store, 3 * RESERVE_SECONDS)
    first = await accept_call(store, draft(idempotency_key="k"), {}, "h")
    replay = await accept_call(store, draft(idempotency_key="k"), {}, "h")
    assert first.created and not replay.created and replay.balance_short is None
    assert await balance(store) == 2 * RESERVE_SECONDS


def billed_total() -> float:
    return REGISTRY.get_sample_value("outdial_billed_seconds_total") or 0


async def test_unlimited_workspace_has_no_reservation_but_its_usage_counts(store: Store) -> None:
    call = draft()
    await accept_call(store, call, {}, None)
    t = now_ms()
    await apply_at(store, call.id, EventSpec("call.answered"), t)
    before = billed_total()
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "completed"}), t + 30_000
    )
    assert ended.billed_seconds == 30
    # Whoever ended the call counts its seconds (the store counts nothing).
    count_call_end(ended)
    assert billed_total() == before + 30
    record = await get_call(store, call.id)
    assert record is not None and record.reserved_s is None and record.billed_s == 30
    assert await balance(store) is None  # still unlimited
    day = (t + 30_000) // DAY_MS
    usage = (await usage_by_day(store, [WS], day, day))[WS]
    assert [(u.calls, u.billed_seconds, u.outcomes) for u in usage] == [(1, 30, {"completed": 1})]


async def test_an_unanswered_call_costs_nothing(store: Store) -> None:
    await add_credits_raw(store, RESERVE_SECONDS)
    call = draft()
    await accept_call(store, call, {}, None)
    t = now_ms()
    await apply_at(store, call.id, EventSpec("call.ringing"), t)
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "no_answer"}), t + 45_000
    )
    assert (ended.ended, ended.billed_seconds) == (True, 0)
    assert await balance(store) == RESERVE_SECONDS
    record = await get_call(store, call.id)
    assert record is not None and record.billed_s == 0


@pytest.mark.parametrize(("rounding", "billed"), [("second", 75), ("minute", 120)])
async def test_a_call_answered_at_t_and_ended_at_t_plus_75_s_bills_from_the_answer(
    store: Store, rounding: str, billed: int
) -> None:
    await add_credits_raw(store, 10 * RESERVE_SECONDS)
    budgets = CallBudgets.from_settings(Settings(OUTDIAL_BILLING_ROUNDING=rounding))
    call = draft(budgets=budgets)
    await accept_call(store, call, {}, None)
    t = now_ms()
    # Ringing time before the answer is not billed.
    await apply_at(store, call.id, EventSpec("call.ringing"), t - 20_000)
    await apply_at(store, call.id, EventSpec("call.answered"), t)
    # The call held two minutes by then (one at the accept, one extension).
    assert (await extend_reservation(store, call.id)).reserved_seconds == 2 * RESERVE_SECONDS
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "completed"}), t + 75_000
    )
    assert ended.billed_seconds == billed
    assert await balance(store) == 10 * RESERVE_SECONDS - billed
    # Terminal is final: a second end (another path's, a replay) bills nothing again.
    again = await apply_at(
        store, call.id, EventSpec("call.failed", {"reason": "error"}), t + 90_000
    )
    assert again.outcome == "stale" and again.billed_seconds == 0
    assert await balance(store) == 10 * RESERVE_SECONDS - billed


async def test_a_call_ended_late_is_billed_what_it_reserved_never_more(store: Store) -> None:
    """The reconciler records the end of a call whose agent died long after the real
    hang-up: the call is billed its reservation, not the time until then."""
    await add_credits_raw(store, 10 * RESERVE_SECONDS)
    call = draft()
    await accept_call(store, call, {}, None)
    t = now_ms()
    await apply_at(store, call.id, EventSpec("call.answered"), t)
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "completed"}), t + 600_000
    )
    assert ended.billed_seconds == RESERVE_SECONDS
    assert await balance(store) == 9 * RESERVE_SECONDS


async def test_a_call_past_what_it_could_reserve_is_billed_what_was_left_never_below_zero(
    store: Store,
) -> None:
    """The balance's last 30 s are granted (not stranded under a minute) and billed, and
    nothing more, however long the call went on."""
    await add_credits_raw(store, RESERVE_SECONDS + 30)
    call = draft()
    await accept_call(store, call, {}, None)
    t = now_ms()
    await apply_at(store, call.id, EventSpec("call.answered"), t)
    # 30 s are left: under per-second billing they are granted, not stranded.
    partial = await extend_reservation(store, call.id, held_seconds=RESERVE_SECONDS)
    assert (partial.outcome, partial.reserved_seconds) == ("granted", RESERVE_SECONDS + 30)
    assert await balance(store) == 0
    refused = await extend_reservation(store, call.id, held_seconds=RESERVE_SECONDS + 30)
    assert (refused.outcome, refused.reserved_seconds) == ("exhausted", RESERVE_SECONDS + 30)
    # The agent did not end it in time: 200 s went by, 90 s were reserved.
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "completed"}), t + 200_000
    )
    assert ended.billed_seconds == RESERVE_SECONDS + 30
    assert await balance(store) == 0


async def test_extensions_are_granted_while_the_balance_lasts(store: Store) -> None:
    await add_credits_raw(store, 2 * RESERVE_SECONDS + 59)
    metered, other = draft(), draft(workspace_id="ws_unlimited")
    for call in (metered, other):
        await accept_call(store, call, {}, None)
        await apply_at(store, call.id, EventSpec("call.answered"), now_ms())
    granted = await extend_reservation(store, metered.id)
    assert (granted.outcome, granted.reserved_seconds) == ("granted", 2 * RESERVE_SECONDS)
    last = await extend_reservation(store, metered.id)
    assert (last.outcome, last.reserved_seconds) == ("granted", 2 * RESERVE_SECONDS + 59)
    assert (await extend_reservation(store, metered.id)).outcome == "exhausted"
    assert await balance(store) == 0
    unmetered = await extend_reservation(store, other.id)
    assert (unmetered.outcome, unmetered.reserved_seconds) == ("granted", 0)
    assert (await extend_reservation(store, "nope")).outcome == "missing"
    await apply_at(store, metered.id, EventSpec("call.ended", {"status": "completed"}), now_ms())
    assert (await extend_reservation(store, metered.id)).outcome == "ended"


async def test_a_call_record_without_an_id_is_missing_to_an_extension(store: Store) -> None:
    await add_credits_raw(store, 10 * RESERVE_SECONDS)
    kcall = store.keys.call("no-id")
    fields = {"status": "in_progress", "reserved_s": "60", "workspace_id": WS}
    await store.redis.hset(kcall, mapping=fields)
    assert (await extend_reservation(store, "no-id")).outcome == "missing"
    assert await balance(store) == 10 * RESERVE_SECONDS


async def metered_workspace(store: Store, seconds: int) -> str:
    workspace = (await create_workspace(store, "metered")).workspace
    assert await add_credits(store, workspace.id, seconds) == seconds
    return workspace.id


async def test_a_workspace_made_unlimited_mid_call_stops_its_extensions(store: Store) -> None:
    ws = await metered_workspace(store, 10 * RESERVE_SECONDS)
    call = draft(workspace_id=ws)
    await accept_call(store, call, {}, None)
    t = now_ms()
    await apply_at(store, call.id, EventSpec("call.answered"), t)
    assert await remove_balance(store, ws)
    # Unmetered now: granted, and a total that does not grow tells the agent to stop asking.
    now_unmetered = await extend_reservation(store, call.id, held_seconds=RESERVE_SECONDS)
    assert (now_unmetered.outcome, now_unmetered.reserved_seconds) == ("granted", 0)
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "completed"}), t + 150_000
    )
    assert ended.billed_seconds == 150  # usage of an unlimited workspace: the whole call
    assert await store.redis.exists(store.keys.balance(ws)) == 0


async def test_a_reservation_from_a_removed_balance_is_not_given_back_to_a_new_one(
    store: Store,
) -> None:
    """Credits removed then added again make a new balance: a call that reserved from the
    old one gives nothing back to it, and is not extended from it."""
    ws = await metered_workspace(store, 10 * RESERVE_SECONDS)
    call = draft(workspace_id=ws)
    await accept_call(store, call, {}, None)
    t = now_ms()
    await apply_at(store, call.id, EventSpec("call.answered"), t)
    assert await remove_balance(store, ws)
    assert await add_credits(store, ws, 2 * RESERVE_SECONDS) == 2 * RESERVE_SECONDS
    stale = await extend_reservation(store, call.id, held_seconds=RESERVE_SECONDS)
    assert (stale.outcome, stale.reserved_seconds) == ("granted", 0)
    ended = await apply_at(
        store, call.id, EventSpec("call.ended", {"status": "completed"}), t + 30_000
    )
    assert ended.billed_seconds == 30
    assert (await balances(store, [ws]))[ws] == 2 * RESERVE_SECONDS
    day = (t + 30_000) // DAY_MS
    usage = (await usage_by_day(store, [ws], day, day))[ws]
    assert [(u.calls, u.billed_seconds) for u in usage] == [(1, 30)]
    # A call accepted from the new balance is settled against it as usual.
    fresh = draft(workspace_id=ws)
    await accept_call(store, fresh, {}, None)
    await apply_at(store, fresh.id, EventSpec("call.answered"), t)
    await apply_at(store, fresh.id, EventSpec("call.ended", {"status": "completed"}), t + 20_000)
    assert (await balances(store, [ws]))[ws] == 2 * RESERVE_SECONDS - 20


async def test_a_retried_ask_takes_nothing_twice_and_max_duration_bounds_the_asks(
    store: Store,
) -> None:
    await add_credits_raw(store, 10 * RESERVE_SECONDS)
    call = draft(max_duration_seconds=150)
    await accept_call(store, call, {}, None)
    await apply_at(store, call.id, EventSpec("call.answered"), now_ms())
    first = await extend_reservation(store, call.id, held_seconds=RESERVE_SECONDS)
    assert (first.outcome, first.reserved_seconds) == ("granted", 2 * RESERVE_SECONDS)
    # the same ask again (its answer was lost): granted, nothing more taken
    again = await extend_reservation(store, call.id, held_seconds=RESERVE_SECONDS)
    assert (again.outcome, again.reserved_seconds) == ("granted", 2 * RESERVE_SECONDS)
    assert await balance(store) == 8 * RESERVE_SECONDS
    third = await extend_reservation(store, call.id, held_seconds=2 * RESERVE_SECONDS)
    assert third.reserved_seconds == 3 * RESERVE_SECONDS  # 180 s now cover the 150 s
    covered = await extend_reservation(store, call.id, held_seconds=3 * RESERVE_SECONDS)
    assert (covered.outcome, covered.reserved_seconds) == ("granted", 3 * RESERVE_SECONDS)
    assert await balance(store) == 7 * RESERVE_SECONDS


async def test_credits_need_a_workspace(store: Store) -> None:
    assert await add_credits(store, "ws_missing", 60) is None
    assert await store.redis.exists(store.keys.balance("ws_missing")) == 0
