"""LiveKitTestServer: a LiveKit protocol server on loopback for tests and benchmarks.

It runs an aiohttp app on its own event loop in a daemon thread, so blocking test code,
async tests (on their own loop) and subprocesses can all talk to it. Everything a test
calls is thread-safe: state sits behind one lock (see state.py) and anything that must
run on the server loop goes through ``asyncio.run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from livekit.protocol.sip import SIPOutboundTrunkInfo

from .agent_ws import AgentHub
from .agents_api import AgentsMixin
from .control import ControlMixin
from .faults import Fault, FaultTable, sip_error_code
from .state import RecordedRequest, RoomState, ServerState, clone
from .twirp import AuthStyle
from .twirp_app import TwirpApp

T = TypeVar("T")


class LiveKitTestServer(ControlMixin, AgentsMixin):
    def __init__(
        self,
        api_key: str = "testkey",
        api_secret: str = "a-test-secret-that-is-long-enough-32",
        *,
        auth_style: AuthStyle = "livekit",
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.webhook_url: str | None = None
        self._host = host
        self._port = port
        self._state = ServerState()
        self._state.record_requests = record_requests
        self._faults = FaultTable()
        self._hub = AgentHub(self._state, api_key, api_secret, auth_style, lambda: self.ws_url)
        self._twirp = TwirpApp(
            self._state,
            self._faults,
            api_key,
            api_secret,
            auth_style,
            self._hub.schedule,
            self._hub.terminate,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> LiveKitTestServer:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="livekit-test-server", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        self._call(self._astart(), timeout=10)
        return self

    async def _astart(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/twirp/{tail:.*}", self._twirp.handle)
        app.router.add_get("/agent", self._hub.handle)
        # no media server: a worker's room connection (/rtc) fails, as tests expect
        app.router.add_route("*", "/rtc{tail:.*}", _no_media)
        # Handlers held by injected delays must not hold up stop() for aiohttp's default 60 s.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._astop(), timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    async def _astop(self) -> None:
        await self._hub.close()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        # Requests still held by injected delays end here, not as "destroyed pending" noise.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> LiveKitTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget rooms, trunks, requests, faults, jobs and webhooks; keep workers. Requests
        held by an injected delay are dropped first: they never apply to the next test."""
        self._faults.clear()
        if self._loop is not None:
            self._call(self._twirp.end_holds(cancel=True), timeout=10)
        self._state.reset()
        if self._loop is not None:
            self._call(self._hub.reset(), timeout=10)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        """Run a coroutine on the server loop and block for its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the server is not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking call from the server loop; use the *_async variant")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server loop from another event loop."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the server is not started")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # -- recorded requests ---------------------------------------------------------------

    def requests(
        self, service: str | None = None, method: str | None = None
    ) -> list[RecordedRequest]:
        with self._state.cond:
            return [_copy_record(r) for r in self._select(service, method)]

    def requests_from(
        self, start: int, service: str | None = None, method: str | None = None
    ) -> tuple[int, list[RecordedRequest]]:
        """The matching answered requests recorded from position `start` of the whole log
        on, up to the first one still unanswered, and the position to ask from next: a
        poller copies only what is new (benchmarks poll while the server records, and a
        full copy each time would slow both)."""
        new: list[RecordedRequest] = []
        with self._state.cond:
            log = self._state.requests
            position = start
            while position < len(log):
                record = log[position]
                if (service is None or record.service == service) and (
                    method is None or record.method == method
                ):
                    if record.status is None:
                        break
                    new.append(_copy_record(record))
                position += 1
            return position, new

    @property
    def record_requests(self) -> bool:
        """When False (benchmarks), requests are only counted: requests() stays empty and
        wait_for returns []."""
        return self._state.record_requests

    @record_requests.setter
    def record_requests(self, value: bool) -> None:
        with self._state.cond:
            self._state.record_requests = value

    def count(self, service: str | None = None, method: str | None = None) -> int:
        with self._state.cond:
            return self._count(service, method)

    def _count(self, service: str | None, method: str | None) -> int:
        return sum(
            n
            for (s, m), n in self._state.counts.items()
            if (service is None or s == service) and (method is None or m == method)
        )

    def _select(self, service: str | None, method: str | None) -> list[RecordedRequest]:
        return [
            r
            for r in self._state.requests
            if (service is None or r.service == service) and (method is None or r.method == method)
        ]

    def wait_for(
        self, service: str | None, method: str | None, count: int = 1, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Block until ``count`` matching requests have arrived (answered or not); return
        all matching records. From inside an async test use ``wait_for_async``."""

        def ready() -> tuple[list[RecordedRequest]] | None:
            if self._count(service, method) < count:
                return None
            # a 1-tuple so an empty list (records off) still counts as ready
            return ([_copy_record(r) for r in self._select(service, method)],)

        def describe() -> str:
            seen = [f"{r.service}.{r.method}->{r.status}" for r in self._state.requests]
            return (
                f"waited {timeout}s for {count} x {service}.{method}, got "
                f"{self._count(service, method)}; all requests so far: {seen}"
            )

        return self._state.wait(ready, timeout, describe)[0]

    async def wait_for_async(
        self, service: str | None, method: str | None, count: int = 1, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        return await asyncio.to_thread(self.wait_for, service, method, count, timeout)

    # -- state -----------------------------------------------------------------------------

    def room(self, name: str, *, include_closed: bool = False) -> RoomState | None:
        """A copy of a live room (or, with include_closed, of a deleted/finished one)."""
        if include_closed:
            return self._state.lookup_room(name)
        with self._state.cond:
            state = self._state.rooms.get(name)
            return state.copy() if state else None

    def room_names(self) -> list[str]:
        with self._state.cond:
            return list(self._state.rooms)

    @property
    def trunks(self) -> dict[str, SIPOutboundTrunkInfo]:
        with self._state.cond:
            return {k: clone(v) for k, v in self._state.trunks.items()}

    # -- faults ----------------------------------------------------------------------------

    def inject(
        self,
        service: str,
        method: str,
        *,
        code: str | None = None,
        status: int | None = None,
        message: str = "injected",
        meta: dict[str, str] | None = None,
        delay_before: float = 0.0,
        delay_after: float = 0.0,
        drop: bool = False,
        times: int | None = 1,
        after_apply: bool | None = None,
    ) -> Fault:
        """Make the next ``times`` matching requests fail, stall or drop (see faults.py)."""
        return self._faults.add(
            Fault(
                service=service,
                method=method,
                code=code,
                status=status,
                message=message,
                meta=dict(meta or {}),
                delay_before=delay_before,
                delay_after=delay_after,
                drop=drop,
                times=times,
                after_apply=after_apply,
            )
        )

    def inject_sip_error(
        self, sip_status_code: int, sip_status: str, *, times: int | None = 1, **kwargs: Any
    ) -> Fault:
        """A failed dial as livekit-server reports it for CreateSIPParticipant with
        wait_until_answered: Twirp code from the SIP status, msg "sip status N: reason", meta
        sip_status_code / sip_status (livekit-api raises SipCallError)."""
        return self.inject(
            "SIP",
            kwargs.pop("method", "CreateSIPParticipant"),
            code=sip_error_code(sip_status_code),
            message=f"sip status {sip_status_code}: {sip_status}",
            meta={"sip_status_code": str(sip_status_code), "sip_status": sip_status},
            times=times,
            **kwargs,
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def release(self, fault: Fault | None = None) -> int:
        """End the delays of the requests held now (all, or those of `fault`, as returned by
        inject): they go on as if the delay had run out. Returns how many were held."""
        return self._call(self._twirp.end_holds(fault, cancel=False))

    def held(self) -> list[RecordedRequest]:
        """The requests waiting out an injected delay now."""
        return [_copy_record(r) for r in self._call(self._twirp.held())]


async def _no_media(request: web.Request) -> web.Response:
    return web.Response(status=404, text="this LiveKit test server has no media server")


def _copy_record(r: RecordedRequest) -> RecordedRequest:
    return RecordedRequest(
        service=r.service,
        method=r.method,
        request=clone(r.request) if r.request is not None else None,
        claims=dict(r.claims),
        received_at=r.received_at,
        status=r.status,
        error_code=r.error_code,
        response=clone(r.response) if r.response is not None else None,
        request_id=r.request_id,
    )
