"""A workspace's events, live, as server-sent events (`GET /v1/api/events/stream`).

Invariants: every refusal (a position Redis cannot read from, an unknown call, all of the
workspace's or the deployment's streams open) and a first read of the feed are done before
the response starts, so a failure there leaves as a JSON error; a stream that started holds
one of its workspace's leases and one of the deployment's (`api.store.feed`) until it ends,
however it ends (the client left, `max_seconds` passed, Redis failed), the leases going back
in a step cancellation cannot interrupt. Every item has an id to resume after (`Last-Event-ID`,
`?after=`): a live event its feed entry id, an event of a call's history `history-<sequence>`,
so a client cut off anywhere goes on where it stopped, missing nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic_core import to_json
from redis.exceptions import RedisError

from api.errors import ApiError, not_found, validation_error
from api.schemas.feed import StreamedEvent
from api.settings import Settings
from api.store.base import Store
from api.store.calls import get_workspace_call
from api.store.feed import (
    MAX_BLOCK_MS,
    FeedEvent,
    call_history,
    feed_position,
    read_feed,
    release_stream_lease,
    renew_stream_lease,
    take_stream_lease,
)

logger = logging.getLogger("outdial.api")

# A feed entry id (`<ms>-<n>`, each below 2^64), 0 for the feed's beginning, or after the
# n-th event of `call_id`'s history (`history-<n>`).
FEED_POSITION_PATTERN = r"^(0|\d{1,20}-\d{1,20}|history-\d{1,9})$"
HISTORY = "history-"
_ENTRY_ID_PART_MAX = 2**64 - 1
# A comment line goes out after this long without an event, so proxies keep the connection
# and a client can tell a quiet stream from a dead one.
HEARTBEAT_SECONDS = MAX_BLOCK_MS / 1000
HEARTBEAT = b": heartbeat\n\n"


@dataclass(frozen=True, slots=True)
class StreamRequest:
    workspace_id: str
    # Go on after this feed entry; None: from now (with `call_id`: the call's events so
    # far first).
    after: str | None
    call_id: str | None
    # End the stream after this many seconds (0: what is there now); None: never.
    max_seconds: int | None


def _item(item_id: str, call_id: str, event: dict[str, Any]) -> bytes:
    data = to_json(StreamedEvent.of(call_id, event).model_dump(mode="json", by_alias=True))
    return b"id: " + item_id.encode() + b"\ndata: " + data + b"\n\n"


def _check_position(after: str, call_id: str | None) -> None:
    problem = None
    if after.startswith(HISTORY):
        problem = None if call_id is not None else "a history position needs call_id"
    elif any(int(part) > _ENTRY_ID_PART_MAX for part in after.split("-")):
        problem = f"a feed entry id's parts are at most {_ENTRY_ID_PART_MAX}"
    if problem is not None:
        raise validation_error([{"loc": ("after",), "msg": problem}])


async def open_event_stream(
    store: Store, settings: Settings, request: StreamRequest
) -> AsyncIterator[bytes]:
    """The stream's bytes; raises ApiError (422 a bad position, 404 unknown call, 429
    TOO_MANY_STREAMS or EVENT_STREAMS_FULL) or RedisError before any is sent."""
    ws, call_id, after = request.workspace_id, request.call_id, request.after
    if after is not None:
        _check_position(after, call_id)
    if call_id is not None and await get_workspace_call(store, ws, call_id) is None:
        raise not_found("call", call_id)
    token = uuid.uuid4().hex
    per_workspace, in_all = settings.event_streams_per_workspace, settings.event_streams_max
    full = await take_stream_lease(store, ws, token, per_workspace, in_all)
    if full == "workspace":
        raise ApiError(
            429,
            "TOO_MANY_STREAMS",
            f"the workspace already has {per_workspace} event streams open",
            {"limit": per_workspace},
        )
    if full == "deployment":
        raise ApiError(
            429,
            "EVENT_STREAMS_FULL",
            f"the deployment already has {in_all} event streams open, retry later",
            {"limit": in_all},
        )
    try:
        history: list[dict[str, Any]] = []
        if after is not None and after.startswith(HISTORY):
            seen = int(after.removeprefix(HISTORY))
            history, position = await call_history(store, ws, str(call_id), seen)
        elif after is not None:
            position = after
        elif call_id is not None:
            history, position = await call_history(store, ws, call_id)
        else:
            position = await feed_position(store, ws)
        # Not blocking: a position Redis refuses is an error before the response starts.
        first, position = await read_feed(store, ws, position, 0, call_id)
    except BaseException:
        await _release(store, ws, token)
        raise
    return _stream(store, request, token, position, history, first)


async def _stream(
    store: Store,
    request: StreamRequest,
    token: str,
    position: str,
    history: list[dict[str, Any]],
    first: list[FeedEvent],
) -> AsyncIterator[bytes]:
    ws, call_id = request.workspace_id, request.call_id
    now = time.monotonic()
    deadline = None if request.max_seconds is None else now + request.max_seconds
    try:
        # A comment first: the client sees the stream open before any event arrives.
        yield b": stream open\n\n"
        for event in history:  # only with a call_id
            yield _item(f"{HISTORY}{event['sequence']}", str(call_id), event)
        for found in first:
            yield _item(found.entry_id, found.call_id, found.event)
        quiet_since = time.monotonic()
        while True:
            wait = quiet_since + HEARTBEAT_SECONDS - time.monotonic()
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            events, position = await read_feed(store, ws, position, int(wait * 1000), call_id)
            await renew_stream_lease(store, ws, token)
            for found in events:
                yield _item(found.entry_id, found.call_id, found.event)
            if events:
                quiet_since = time.monotonic()
            if deadline is not None and time.monotonic() >= deadline:
                return
            if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                yield HEARTBEAT
                quiet_since = time.monotonic()
    except RedisError as exc:
        # The response has started: the stream can only end; the client resumes from the
        # last id it got.
        logger.error("event stream of workspace %s ended: redis unavailable: %s", ws, exc)
    finally:
        with anyio.CancelScope(shield=True):
            await _release(store, ws, token)


async def _release(store: Store, ws: str, token: str) -> None:
    # Redis failing here leaves the lease to expire (`STREAM_LEASE_MS`).
    with contextlib.suppress(RedisError):
        await release_stream_lease(store, ws, token)
