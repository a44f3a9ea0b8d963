"""The per-process resources: the store, LiveKit's clients, the callback HTTP session.

Invariant: one holder per event loop, created, used and closed on that loop, and
`aclose()` closes everything it opened. aiohttp sessions and Redis connections belong to
the loop that opened them, so each owner of a loop owns one holder: the API's lifespan
(`app.state.resources`, see api/deps.py) and the worker's `WorkerResources` middleware (its
event-loop thread, see api/jobs/resources.py). Each client is made on first use, so a
process opens only what it uses (the API never opens the callback session). A holder used
from a second loop raises instead of handing out a client bound to the first.
"""

from __future__ import annotations

import asyncio

import aiohttp
from livekit import api as lkapi

from api.livekit import ServerToken, build_livekit_client
from api.relay.http import open_delivery_session
from api.settings import Settings
from api.store.base import Store, open_store


class Resources:
    """Clients made lazily on the holder's loop; `aclose()` closes them (see module doc)."""

    def __init__(
        self, settings: Settings, *, livekit_session: aiohttp.ClientSession | None = None
    ) -> None:
        self.settings = settings
        # A caller's session for LiveKit requests (e.g. with its own resolver): its owner
        # closes it. Without one, the holder opens (and closes) its own.
        self._given_livekit_session = livekit_session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: Store | None = None
        self._livekit_session: aiohttp.ClientSession | None = None
        self._server_token = ServerToken(settings)
        self._livekit: lkapi.LiveKitAPI | None = None
        self._single_shot_livekit: lkapi.LiveKitAPI | None = None
        self._room_admin_livekit: lkapi.LiveKitAPI | None = None
        self._callback_session: aiohttp.ClientSession | None = None

    @property
    def store(self) -> Store:
        self._check_loop()
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @property
    def livekit(self) -> lkapi.LiveKitAPI:
        """For idempotent requests: replayed on LiveKit Cloud (see api/livekit.py)."""
        self._check_loop()
        if self._livekit is None or self._server_token.due():
            return self._sign_server_clients()[0]
        return self._livekit

    @property
    def single_shot_livekit(self) -> lkapi.LiveKitAPI:
        """For requests that must reach LiveKit at most once: dial, create trunk."""
        self._check_loop()
        if self._single_shot_livekit is None or self._server_token.due():
            return self._sign_server_clients()[1]
        return self._single_shot_livekit

    @property
    def room_admin_livekit(self) -> lkapi.LiveKitAPI:
        """For a room's own (idempotent) requests: ListParticipants (see api/livekit.py)."""
        self._check_loop()
        if self._room_admin_livekit is None:
            self._room_admin_livekit = build_livekit_client(
                self.settings, self._session_for_livekit(), failover=True
            )
        return self._room_admin_livekit

    @property
    def callback_session(self) -> aiohttp.ClientSession:
        """The session callbacks are sent through (it refuses non-public addresses)."""
        self._check_loop()
        if self._callback_session is None:
            self._callback_session = open_delivery_session(self.settings.callback_allow_private)
        return self._callback_session

    async def aclose(self) -> None:
        """Close what the holder opened; the next use opens it again (on the same loop)."""
        self._check_loop()
        store, self._store = self._store, None
        livekit_session, self._livekit_session = self._livekit_session, None
        callback_session, self._callback_session = self._callback_session, None
        self._livekit = self._single_shot_livekit = self._room_admin_livekit = None
        # The clients send through a session passed to them, which their aclose() leaves
        # open: closing the session is what closes them.
        if livekit_session is not None:
            await livekit_session.close()
        if callback_session is not None:
            await callback_session.close()
        if store is not None:
            await store.aclose()

    def _sign_server_clients(self) -> tuple[lkapi.LiveKitAPI, lkapi.LiveKitAPI]:
        """Both server clients (failover, single shot), with a newly signed token: requests
        already sent keep the old clients, whose token is still good for half its lifetime."""
        token = self._server_token.sign()
        session = self._session_for_livekit()
        livekit = build_livekit_client(self.settings, session, failover=True, token=token)
        single_shot = build_livekit_client(self.settings, session, failover=False, token=token)
        self._livekit, self._single_shot_livekit = livekit, single_shot
        return livekit, single_shot

    def _session_for_livekit(self) -> aiohttp.ClientSession:
        if self._given_livekit_session is not None:
            return self._given_livekit_session
        if self._livekit_session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.livekit_timeout_seconds)
            self._livekit_session = aiohttp.ClientSession(timeout=timeout)
        return self._livekit_session

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "these resources belong to another event loop: each loop's owner holds its own"
            )
