"""The workspace's event feed, read live (`GET /v1/api/events/stream`), and the leases that
bound how many readers a workspace, and the whole deployment, hold.

Invariant: the feed (`keys.feed`) names every event recorded for a call of the workspace,
in the order recorded, because the step that records an event appends it (lib/feed.lua).
So a reader that goes on from an entry id misses none and sees none twice, and a call's
events listed together with the feed's last id (`call_history`, one transaction) are
exactly those up to that id. Blocking reads go through `store.feed_redis`, never the shared
pool, whose socket timeout is shorter than a block.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from api.store.base import Store

# A read blocks at most this long (the reader's heartbeat interval bounds it further).
MAX_BLOCK_MS = 15_000
# Entries read per round trip.
READ_COUNT = 100
# An open stream's lease; its reader renews it on every read, so a reader that died without
# releasing it (a killed API process) frees its place after this long.
STREAM_LEASE_MS = 60_000
# Which cap refused a stream: the workspace's or the whole deployment's.
StreamScope = Literal["workspace", "deployment"]


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """A recorded event as the feed reaches it: its feed entry id, its call, the event as
    stored (id, type, sequence, status, timestamp, data)."""

    entry_id: str
    call_id: str
    event: dict[str, Any]


async def feed_position(store: Store, workspace_id: str) -> str:
    """The id of the feed's newest entry ('0-0' for an empty feed): reading after it gives
    the events recorded from now on."""
    newest = await store.redis.xrevrange(store.keys.feed(workspace_id), count=1)
    return cast(str, newest[0][0]) if newest else "0-0"


async def call_history(
    store: Store, workspace_id: str, call_id: str, seen: int = 0
) -> tuple[list[dict[str, Any]], str]:
    """The call's events so far after its first `seen`, and the feed position they end at,
    in one transaction."""
    pipe = store.redis.pipeline(transaction=True)
    pipe.lrange(store.keys.events(call_id), seen, -1)
    pipe.xrevrange(store.keys.feed(workspace_id), count=1)
    raw_events, newest = await pipe.execute()
    position = newest[0][0] if newest else "0-0"
    return [json.loads(item) for item in raw_events], position


async def read_feed(
    store: Store, workspace_id: str, after: str, block_ms: int, call_id: str | None = None
) -> tuple[list[FeedEvent], str]:
    """The events recorded after feed entry `after` (waiting up to `block_ms` for one; 0:
    not at all), only `call_id`'s when given, and the position to read on from. An entry
    whose event is gone (its call expired) is passed over."""
    key = store.keys.feed(workspace_id)
    block = block_ms if block_ms > 0 else None
    # RESP2 (`open_store`): [[key, [(entry id, fields), ...]]], or empty after the block.
    reply = cast(
        list[tuple[str, list[tuple[str, dict[str, str]]]]],
        await store.feed_redis.xread({key: after}, count=READ_COUNT, block=block),
    )
    entries = reply[0][1] if reply else []
    if not entries:
        return [], after
    wanted = [
        (entry_id, fields["c"], int(fields["s"]))
        for entry_id, fields in entries
        if call_id is None or fields.get("c") == call_id
    ]
    pipe = store.redis.pipeline(transaction=False)
    for _, entry_call, sequence in wanted:
        pipe.lindex(store.keys.events(entry_call), sequence - 1)
    raw_events = await pipe.execute() if wanted else []
    found = [
        FeedEvent(entry_id, entry_call, json.loads(raw))
        for (entry_id, entry_call, _), raw in zip(wanted, raw_events, strict=True)
        if raw is not None
    ]
    return found, entries[-1][0]


def _now_ms() -> int:
    return int(time.time() * 1000)


async def take_stream_lease(
    store: Store, workspace_id: str, token: str, per_workspace: int, in_all: int
) -> StreamScope | None:
    """A place for `token` among the workspace's `per_workspace` open streams and the
    deployment's `in_all`, or the scope whose places are all held. Expired leases are
    dropped first; a refused token leaves nothing behind."""
    now = _now_ms()
    pipe = store.redis.pipeline(transaction=True)
    for key in _lease_keys(store, workspace_id):
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {token: now + STREAM_LEASE_MS})
        pipe.zcard(key)
        pipe.pexpire(key, STREAM_LEASE_MS)
    replies = await pipe.execute()
    full: StreamScope | None = None
    if replies[2] > per_workspace:
        full = "workspace"
    elif replies[6] > in_all:
        full = "deployment"
    if full is not None:
        await release_stream_lease(store, workspace_id, token)
    return full


async def renew_stream_lease(store: Store, workspace_id: str, token: str) -> None:
    pipe = store.redis.pipeline(transaction=True)
    for key in _lease_keys(store, workspace_id):
        pipe.zadd(key, {token: _now_ms() + STREAM_LEASE_MS})
        pipe.pexpire(key, STREAM_LEASE_MS)
    await pipe.execute()


async def release_stream_lease(store: Store, workspace_id: str, token: str) -> None:
    pipe = store.redis.pipeline(transaction=True)
    for key in _lease_keys(store, workspace_id):
        pipe.zrem(key, token)
    await pipe.execute()


def _lease_keys(store: Store, workspace_id: str) -> tuple[str, str]:
    return store.keys.event_streams(workspace_id), store.keys.all_event_streams()
