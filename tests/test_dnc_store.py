"""The do-not-call list in the store (`api.store.dnc`, dnc_add.lua, dnc_remove.lua) and where
it is read: the accepts (lib/accept_record.lua) and the admission (admit.lua), against real
Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis

from api.settings import Settings
from api.store.base import Store, open_store
from api.store.billing import RESERVE_SECONDS
from api.store.calls import accept_call, get_call
from api.store.clock import now_ms
from api.store.dnc import (
    DncListFull,
    add_to_dnc,
    count_dnc,
    dnc_entry,
    list_dnc,
    remove_from_dnc,
)
from api.store.events import EventSpec, apply_event
from api.store.pacing import admit
from api.store.scheduled_calls import Due, accept_scheduled_call
from tests.support import redis_snapshot
from tests.test_store import draft

WS = "ws_1"  # the workspace of `draft()`
CALLEE = "+14155552671"  # the number `draft()` calls
OTHER = "+14155550199"


async def test_an_add_lists_each_number_once_with_its_first_time_and_source(store: Store) -> None:
    before = now_ms()
    assert await add_to_dnc(store, WS, [CALLEE, OTHER, CALLEE], "api") == 2
    after = now_ms()
    # Again, and with another source: nothing new, the first add's time and source stay.
    assert await add_to_dnc(store, WS, [OTHER, CALLEE], "opt_out") == 0
    entry = await dnc_entry(store, WS, CALLEE)
    assert entry is not None and entry.source == "api"
    assert before <= entry.added_at <= after
    assert await count_dnc(store, WS) == 2
    assert await add_to_dnc(store, WS, [], "import") == 0


async def test_remove_takes_the_number_off_and_says_whether_it_was_listed(store: Store) -> None:
    await add_to_dnc(store, WS, [CALLEE, OTHER], "import")
    assert await remove_from_dnc(store, WS, CALLEE)
    assert not await remove_from_dnc(store, WS, CALLEE)
    assert await dnc_entry(store, WS, CALLEE) is None
    page = await list_dnc(store, WS, limit=10)
    assert [entry.number for entry in page.entries] == [OTHER]
    assert await count_dnc(store, WS) == 1
    # Listed again later: a new entry, with the new source.
    assert await add_to_dnc(store, WS, [CALLEE], "opt_out") == 1
    entry = await dnc_entry(store, WS, CALLEE)
    assert entry is not None and entry.source == "opt_out"


async def test_an_unknown_source_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="source"):
        await add_to_dnc(store, WS, [CALLEE], "somebody")
    assert await count_dnc(store, WS) == 0


async def test_pages_follow_the_cursor_through_the_whole_list_in_number_order(
    store: Store,
) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(25)]
    await add_to_dnc(store, WS, list(reversed(numbers)), "import")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await list_dnc(store, WS, limit=10, after=cursor)
        seen += [entry.number for entry in page.entries]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(numbers) and pages == 3
    # A list of exactly one page ends without a cursor.
    assert (await list_dnc(store, WS, limit=25)).next_cursor is None


async def test_an_add_past_the_limit_writes_nothing(
    redis_only_settings: Settings, redis_client: redis.Redis
) -> None:
    small = open_store(redis_only_settings.model_copy(update={"dnc_max_numbers": 3}))
    try:
        assert await add_to_dnc(small, WS, [CALLEE, OTHER], "api") == 2
        before = redis_snapshot(redis_client, small.keys.prefix)
        # One listed already and two new ones: four would pass three.
        with pytest.raises(DncListFull) as refused:
            await add_to_dnc(small, WS, [CALLEE, "+14155550101", "+14155550102"], "import")
        assert (refused.value.limit, refused.value.size) == (3, 2)
        assert redis_snapshot(redis_client, small.keys.prefix) == before
        # What fits is taken, also when the request repeats a listed number.
        assert await add_to_dnc(small, WS, [CALLEE, "+14155550101"], "import") == 1
        assert await count_dnc(small, WS) == 3
        # Another workspace's list has its own limit.
        assert await add_to_dnc(small, "ws_2", [CALLEE, OTHER, "+14155550101"], "api") == 3
    finally:
        await small.aclose()


async def test_concurrent_adds_never_pass_the_limit(redis_only_settings: Settings) -> None:
    small = open_store(redis_only_settings.model_copy(update={"dnc_max_numbers": 10}))
    try:
        batches = [[f"+1415555{b}{n:03d}" for n in range(4)] for b in range(6)]
        results = await asyncio.gather(
            *(add_to_dnc(small, WS, batch, "import") for batch in batches),
            return_exceptions=True,
        )
        taken = [r for r in results if isinstance(r, int)]
        assert taken == [4, 4] and await count_dnc(small, WS) == 8
        assert all(isinstance(r, DncListFull) for r in results if not isinstance(r, int))
    finally:
        await small.aclose()


async def test_an_accept_to_a_listed_number_writes_nothing_and_reserves_nothing(
    store: Store, redis_client: redis.Redis
) -> None:
    await store.redis.incrby(store.keys.balance(WS), 5 * RESERVE_SECONDS)
    await add_to_dnc(store, WS, [CALLEE], "api")
    before = redis_snapshot(redis_client, store.keys.prefix)
    now = await accept_call(store, draft(), {}, None)
    later = await accept_scheduled_call(
        store, draft(), {}, None, Due(now_ms() + 86_400_000, "scheduled_time")
    )
    assert (now.created, now.do_not_call) == (False, True)
    assert (later.created, later.do_not_call) == (False, True)
    # No record, message, index entry, event or reservation: the balance is as it was.
    assert redis_snapshot(redis_client, store.keys.prefix) == before
    # Another number of the workspace, and the listed number for another workspace, go.
    assert (await accept_call(store, draft(to=OTHER), {}, None)).created
    assert (await accept_call(store, draft(workspace_id="ws_2"), {}, None)).created


async def test_an_idempotent_replay_answers_its_first_call_after_the_number_is_listed(
    store: Store,
) -> None:
    first = await accept_call(store, draft(idempotency_key="k"), {"callId": "first"}, "h")
    await add_to_dnc(store, WS, [CALLEE], "api")
    replay = await accept_call(store, draft(idempotency_key="k"), {}, "h")
    assert first.created and not replay.created and not replay.do_not_call
    assert replay.previous is not None and replay.previous["response"]["callId"] == "first"


async def test_a_call_listed_after_its_accept_is_not_admitted_and_nothing_changes(
    store: Store,
) -> None:
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    await add_to_dnc(store, WS, [CALLEE], "opt_out")
    before = await store.redis.hgetall(store.keys.call(call.id))
    admission = await admit(store, call.id)
    assert admission.outcome == "do_not_call" and not admission.may_dispatch
    assert await store.redis.hgetall(store.keys.call(call.id)) == before
    assert await store.redis.zcard(store.keys.trunk_slots(call.sip_trunk_id)) == 0
    assert await store.redis.zcard(store.keys.workspace_slots(WS)) == 0


async def test_a_listed_call_that_holds_its_slots_is_refused_and_its_end_frees_them(
    store: Store,
) -> None:
    """A redelivered (or paced) dispatch of an admitted call finds it listed: the check
    comes before the one that lets a call holding its slots pass."""
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    assert (await admit(store, call.id)).outcome == "admitted"
    await add_to_dnc(store, WS, [CALLEE], "api")
    assert (await admit(store, call.id)).outcome == "do_not_call"
    canceled = EventSpec("call.canceled", {"reason": "do_not_call"}, expected_status="queued")
    assert (await apply_event(store, call.id, canceled)).applied
    assert await store.redis.zcard(store.keys.trunk_slots(call.sip_trunk_id)) == 0
    assert await store.redis.zcard(store.keys.workspace_slots(WS)) == 0


async def test_another_workspaces_list_never_holds_a_call(store: Store) -> None:
    await add_to_dnc(store, "ws_2", [CALLEE], "api")
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    assert (await admit(store, call.id)).outcome == "admitted"
    record = await get_call(store, call.id)
    assert record is not None and record.status == "queued"


async def test_a_record_without_its_number_is_admitted_as_before(store: Store) -> None:
    """admit.lua reads the list only for a record that has a number."""
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    await add_to_dnc(store, WS, [CALLEE], "api")
    await store.redis.hdel(store.keys.call(call.id), "to")
    assert (await admit(store, call.id)).outcome == "admitted"
