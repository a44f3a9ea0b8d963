"""LiveKit server API clients: three kinds, which request goes through which.

Invariant: a request that acts every time it arrives reaches LiveKit at most once per
invocation. livekit-api builds its clients with `failover=True`; against LiveKit Cloud hosts
(`*.livekit.cloud`, `cloud-api.*.livekit.io`) that client replays any request that got a
5xx or a transport error, up to 3 attempts. The server may have applied the request before
the error, so a replay repeats the act. Hence:

- `Resources.livekit` (failover on): idempotent requests only. CreateRoom (an upsert),
  DeleteRoom, ListRooms, DeleteSIPTrunk (a missing trunk is fine).
- `Resources.single_shot_livekit` (`failover=False`, one attempt): CreateSIPParticipant (each
  one rings the callee) and CreateSIPOutboundTrunk (each one creates a trunk); the agent's
  TransferSIPParticipant goes through its own such client (agent_runtime/telephony.py). A 5xx
  or transport error from one means "outcome unknown": look at LiveKit's state before doing
  anything again.
- `Resources.room_admin_livekit` (failover on): a room's own idempotent requests
  (ListParticipants), whose token must name the room: it signs one per request (livekit-api's
  way). The other two send one pre-signed token (`ServerToken`) carrying the grants of every
  request Outdial makes outside one room's scope, so no room-scoped request can pass there.

Against a self-hosted URL every client makes exactly one attempt. Every request gives up after
`OUTDIAL_LIVEKIT_TIMEOUT_SECONDS` (see `_TimedSession`: livekit-api's own 10 s never
applies); for the dial, a timeout is one more "outcome unknown". The clients of a process
and event loop are held, and closed, by `api.resources.Resources`.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
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


# A server token's lifetime; it is signed again once half of it is gone, so a request in
# flight never carries one about to expire.
SERVER_TOKEN_TTL = datetime.timedelta(minutes=10)


class ServerToken:
    """The token of the server clients (see the module docstring), signed once per half
    lifetime instead of once per request: livekit-api signs a token for every request
    (claims to a dict with deep copies, then HS256), which cost about a tenth of a worker's
    CPU at campaign rates (bench/RESULTS.md)."""

    # The wall clock, as the token's own lifetime is: a process paused or asleep past half
    # of it finds its token due when it wakes.
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._signed_at: float | None = None

    def due(self) -> bool:
        """Whether a new token is needed: none signed yet, or half its lifetime gone."""
        if self._signed_at is None:
            return True
        return self._clock() - self._signed_at >= SERVER_TOKEN_TTL.total_seconds() / 2

    def sign(self) -> str:
        self._signed_at = self._clock()
        token = lkapi.AccessToken(self._settings.livekit_api_key, self._settings.livekit_api_secret)
        token.with_ttl(SERVER_TOKEN_TTL)
        token.with_grants(lkapi.VideoGrants(room_create=True, room_list=True))
        token.with_sip_grants(lkapi.SIPGrants(admin=True, call=True))
        return token.to_jwt()


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
    settings: Settings, session: aiohttp.ClientSession, *, failover: bool, token: str = ""
) -> lkapi.LiveKitAPI:
    """A client sending through `session` (its owner closes it; `aclose()` leaves it open),
    with the session's timeout applied to every request (see `_TimedSession`). With `token`
    it sends that token with every request; without, it signs one per request."""
    timed = cast(aiohttp.ClientSession, _TimedSession(session))
    if token:
        url = settings.livekit_url
        return lkapi.LiveKitAPI(url=url, token=token, session=timed, failover=failover)
    return lkapi.LiveKitAPI(
        url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        session=timed,
        failover=failover,
    )
