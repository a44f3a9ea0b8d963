"""The relay's share of a worker's threads: its size and how a slot is taken and given back."""

from __future__ import annotations

import asyncio

import pytest

from api.jobs.thread_share import RelayThreadShare, relay_thread_limit


@pytest.mark.parametrize(("threads", "limit"), [(1, 1), (2, 1), (4, 3), (8, 6), (16, 12)])
def test_a_quarter_of_the_threads_is_kept_for_dialing(threads: int, limit: int) -> None:
    assert relay_thread_limit(threads) == limit


async def test_slots_run_out_then_come_back() -> None:
    share = RelayThreadShare()
    share.limit = 2
    assert await share.take(0.01) and await share.take(0.01)
    assert not await share.take(0.01)  # full: turned away after the wait
    waiter = asyncio.create_task(share.take(1.0))
    await asyncio.sleep(0.01)
    share.give_back()
    assert await waiter  # a slot given back goes to the one waiting for it
    assert not await share.take(0.01)


async def test_unlimited_before_a_worker_boots() -> None:
    share = RelayThreadShare()
    assert all([await share.take(0.0) for _ in range(100)])
    share.give_back()  # nothing to give back to: no error
