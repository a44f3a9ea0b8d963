"""LiveKit server API clients: two kinds, which request goes through which.

Invariant: a request that acts every time it arrives reaches LiveKit at most once per
invocation. livekit-api builds its clients with `failover=True`; against LiveKit Cloud hosts
(`*.livekit.cloud`, `cloud-api.*.livekit.io`) that client replays any request that got a
5xx or a transport error, up to 3 attempts. The server may have applied the request before
the error, so a replay repeats the act. Hence two clients:

- `Resources.livekit` (failover on): idempotent requests only. CreateRoom (an upsert),
  DeleteRoom, ListRooms, ListParticipants, DeleteSIPTrunk (a missing trunk is fine).
- `Resources.single_shot_livekit` (`failover=False`, one attempt): CreateSIPParticipant (each
  one rings the callee), TransferSIPParticipant (each one sends a REFER) and
  CreateSIPOutboundTrunk (each one creates a trunk). A 5xx or transport error from it means
  "outcome unknown": look at LiveKit's state before doing anything again.

Against a self-hosted URL both make exactly one attempt. Every request gives up after
`OUTDIAL_LIVEKIT_TIMEOUT_SECONDS` (see `_TimedSession`: livekit-api's own 10 s never
applies); for the dial, a timeout is one more "outcome unknown". The clients of a process
and event loop are held, and closed, by `api.resources.Resources`.
"""

from __future__ import annotations

from typing import Any, cast

import aiohttp
from livekit import api as lkapi

from api.settings import Settings

# What a LiveKit request may raise (livekit-api's Twirp client): an error answer, a transport
# error (refused, reset, a connection dropped mid-answer; a socket error aiohttp did not wrap),
# or the timeout.
LIVEKIT_ERRORS: tuple[type[Exception], ...] = (
    lkapi.ServerError,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)


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


def build_livekit_client(
    settings: Settings, session: aiohttp.ClientSession, *, failover: bool
) -> lkapi.LiveKitAPI:
    """A client sending through `session` (its owner closes it; `aclose()` leaves it open),
    with the session's timeout applied to every request (see `_TimedSession`)."""
    return lkapi.LiveKitAPI(
        url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        session=cast(aiohttp.ClientSession, _TimedSession(session)),
        failover=failover,
    )
