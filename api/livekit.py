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

Against a self-hosted URL both make exactly one attempt.
"""

from __future__ import annotations

import asyncio

import aiohttp
from livekit import api as lkapi

from api.settings import Settings

# (id of the event loop, failover): a client's aiohttp session is bound to its loop.
_clients: dict[tuple[int, bool], lkapi.LiveKitAPI] = {}


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
    # its owner closes it, `aclose()` leaves a caller's session open.
    key = (id(asyncio.get_running_loop()), failover)
    client = _clients.get(key)
    if client is None:
        client = lkapi.LiveKitAPI(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret,
            session=session,
            failover=failover,
        )
        _clients[key] = client
    return client


async def close_livekit_client() -> None:
    """Close both clients of the running loop (the next call creates them again)."""
    loop_id = id(asyncio.get_running_loop())
    for failover in (True, False):
        client = _clients.pop((loop_id, failover), None)
        if client is not None:
            await client.aclose()
