"""Stand-in for branch `dnc`'s `api.store.dnc` (the do-not-call list), with its
`add_to_dnc` signature and `DncListFull`, until that branch lands: the merge replaces this
file whole. Numbers go into the same hash (`{p}:ws:{ws}:dnc`, number -> `<ms>:<source>`)."""

from __future__ import annotations

from collections.abc import Sequence

from api.store.base import Store
from api.store.clock import now_ms


class DncListFull(Exception):
    """The add would take the workspace's list past its limit; nothing was written."""

    def __init__(self, limit: int, size: int, new: int) -> None:
        super().__init__(f"the do-not-call list holds {size} of at most {limit} numbers")
        self.limit = limit
        self.size = size


async def add_to_dnc(store: Store, workspace_id: str, numbers: Sequence[str], source: str) -> int:
    """List `numbers` (E.164) for `workspace_id`; how many were not listed before."""
    key = f"{store.keys.prefix}:ws:{workspace_id}:dnc"
    entry = f"{now_ms()}:{source}"
    async with store.redis.pipeline(transaction=True) as pipe:
        for number in numbers:
            pipe.hsetnx(key, number, entry)
        replies = await pipe.execute()
    return sum(int(reply) for reply in replies)
