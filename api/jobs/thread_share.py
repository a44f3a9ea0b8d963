"""Keeps part of each worker process's threads free for dialing.

A callback attempt holds its Dramatiq thread until the receiver answers (up to the callback
timeout), so enough slow receivers would hold every thread and delay the dial jobs queued
behind them. The relay actors take a slot of the relay's share first; without one, they put
their work back for a moment and return at once, which frees the thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from api.metrics import RELAY_TURNED_AWAY

# A relay actor waits this long for a slot (briefly holding its thread) before it turns
# its work away: slots of fast receivers free within milliseconds, and turning work away
# costs a round trip through Redis. A dial job may wait as long behind such a waiter.
SHARE_WAIT_SECONDS = 0.05
# How soon work turned away for lack of a slot is tried again.
SHARE_RETRY_MS = 500


def relay_thread_limit(threads: int) -> int:
    """Threads the relay may hold at once: all but a quarter of them (at least one kept)."""
    return max(1, threads - max(1, threads // 4))


class RelayThreadShare:
    """Slots for relay actors in progress. They are coroutines on the worker's one event
    loop; unlimited until a worker boots (as when a test calls an actor directly)."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self._slots: asyncio.Semaphore | None = None

    async def take(self, wait_seconds: float = SHARE_WAIT_SECONDS) -> bool:
        if self.limit is None:
            return True
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        try:
            async with asyncio.timeout(wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True

    def give_back(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def run(
        self, work: Callable[[], Awaitable[Any]], turn_away: Callable[[], Awaitable[Any]]
    ) -> None:
        """`work` in a slot of the share; without one, `turn_away` (counted) instead."""
        if not await self.take():
            RELAY_TURNED_AWAY.inc()
            await turn_away()
            return
        try:
            await work()
        finally:
            self.give_back()


RELAY_SHARE = RelayThreadShare()


class SizeRelayShare(Middleware):
    """Sizes the relay's share from the worker's thread count, before its threads start
    (`after_worker_boot` would leave the first messages unlimited)."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        RELAY_SHARE.limit = relay_thread_limit(worker.worker_threads)
