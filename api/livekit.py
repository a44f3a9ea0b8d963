"""LiveKit server API clients, one of each kind per process and event loop, closed on shutdown.

Invariant: a request that acts every time it arrives reaches LiveKit at most once per
invocation. livekit-api builds its clients with `failover=True`; against LiveKit Cloud hosts
(`*.livekit.cloud`, `cloud-api.*.livekit.io`) that client replays any request that got a
5xx or a transport error, up to 3 attempts. The server may have applied the request before
the error, so a replay repeats the act. Hence two clients:

- `livekit_client` (failover on): idempotent requests only. CreateRoom (an upsert),
  DeleteRoom, ListRooms, ListParticipants, DeleteSIPTrunk (a missing trunk is fine).
- `single_shot_livekit_client` (`failover=False`, one attempt): CreateSIPParticipant (each
  one rings the callee), TransferSIPParticipant (each one sends a REFER) and
  CreateSIPOutboundTrunk (each one creates a trunk). A 5xx or transport error from it means
  "outcome unknown": look at LiveKit's state before doing anything again.

Against a self-hosted URL both make exactly one attempt. Every request gives up after
`OUTDIAL_LIVEKIT_TIMEOUT_SECONDS` (see `_TimedSession`: livekit-api's own 10 s never
applies); for the dial, a timeout is one more "outcome unknown".
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
from livekit import api as lkapi

from api.settings import Settings

# (id of the event loop, failover) -> the client and the session it owns (None: a caller's).
# A client's aiohttp session is bound to its loop.
_clients: dict[tuple[int, bool], tuple[lkapi.LiveKitAPI, aiohttp.ClientSession | None]] = {}


class _TimedSession:
    """The session a client sends through, with a timeout that applies.

    livekit-api passes `timeout=None` to each request it is not given a timeout for, and
    aiohttp reads None as "no timeout at all", not "the session's": a session timeout (its
    own default of 10 s included) never applies, and a LiveKit request that hangs would hold
    its job until the actor's time limit. Here None means the session's timeout."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def post(self, url: str, *, timeout: aiohttp.ClientTimeout | None = None, **kwargs: Any) -> Any:
        if timeout is not None:
            kwargs["timeout"] = timeout
        return self._session.post(url, **kwargs)

    def get(self, url: str, *, timeout: aiohttp.ClientTimeout | None = None, **kwargs: Any) -> Any:
        if timeout is not None:
            kwargs["timeout"] = timeout
        return self._session.get(url, **kwargs)


def livekit_client(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> lkapi.LiveKitAPI:
    """The running loop's client for idempotent requests (replayed on LiveKit Cloud)."""
    return _loop_client(settings, failover=True, session=session)


def single_shot_livekit_client(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> lkapi.LiveKitAPI:
    """The running loop's client for requests that must not be replayed (see module doc)."""
    return _loop_client(settings, failover=False, session=session)


def _loop_client(
    settings: Settings, *, failover: bool, session: aiohttp.ClientSession | None
) -> lkapi.LiveKitAPI:
    # `session` (e.g. a custom connector) only counts when the loop's client is created;
    # its owner closes it (and its timeout applies), `aclose()` leaves a caller's session open.
    key = (id(asyncio.get_running_loop()), failover)
    entry = _clients.get(key)
    if entry is None:
        owned = None
        if session is None:
            timeout = aiohttp.ClientTimeout(total=settings.livekit_timeout_seconds)
            session = owned = aiohttp.ClientSession(timeout=timeout)
        client = lkapi.LiveKitAPI(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret,
            session=cast(aiohttp.ClientSession, _TimedSession(session)),
            failover=failover,
        )
        entry = _clients[key] = (client, owned)
    return entry[0]


async def close_livekit_client() -> None:
    """Close both clients of the running loop (the next call creates them again)."""
    loop_id = id(asyncio.get_running_loop())
    for failover in (True, False):
        entry = _clients.pop((loop_id, failover), None)
        if entry is not None:
            client, owned = entry
            await client.aclose()
            if owned is not None:
                await owned.close()
