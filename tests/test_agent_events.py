"""EventReporter against a real aiohttp receiver on loopback.

`EventReceiver` is also used by test_agent_worker.py: it stands in for the API's
`/v1/internal/calls/{call_id}/events` endpoint and records what it gets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from agent_runtime import EventReporter, ReporterOptions
from agent_runtime.contract import AgentEvent

FAST = ReporterOptions(initial_backoff_seconds=0.02, max_backoff_seconds=0.1)


@dataclass
class Received:
    call_id: str
    authorization: str | None
    body: dict[str, Any]
    status: int


class EventReceiver:
    """Answers POST /v1/internal/calls/{call_id}/events; `statuses` are answered first, in
    order, then 200. Runs on its own loop in a thread, so sync and async tests can use it."""

    def __init__(self, token: str = "event-token") -> None:
        self.token = token
        self.statuses: list[int] = []
        self.delay_seconds = 0.0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, call_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/v1/internal/calls/{call_id}/events"

    def start(self) -> EventReceiver:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(5)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/v1/internal/calls/{call_id}/events", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200 and request.headers.get("Authorization") != f"Bearer {self.token}":
                status = 401
            self.received.append(
                Received(
                    request.match_info["call_id"],
                    request.headers.get("Authorization"),
                    body,
                    status,
                )
            )
        if status != 200:
            return web.json_response({"error": {"code": "x"}}, status=status)
        return web.json_response(
            {"applied": True, "outcome": "applied", "sequence": 1, "status": "dialing"}
        )

    def applied(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r.body
                for r in self.received
                if r.status == 200 and (event_type is None or r.body["type"] == event_type)
            ]

    def wait_for(self, event_type: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.applied(event_type):
                return found[0]
            time.sleep(0.05)
        raise TimeoutError(f"no {event_type} within {timeout}s; got {self.applied()}")


@pytest.fixture
def receiver() -> Iterator[EventReceiver]:
    server = EventReceiver().start()
    yield server
    server.stop()


async def test_retries_503_then_applies_once(receiver: EventReceiver) -> None:
    receiver.statuses = [503, 503]
    reporter = EventReporter(receiver.url("call_1"), receiver.token, options=FAST)
    event = AgentEvent(type="call.answered", data={"x": 1})
    reporter.send(event)
    await reporter.aclose(timeout=5)
    assert [r.status for r in receiver.received] == [503, 503, 200]
    assert {r.body["id"] for r in receiver.received} == {event.id}
    assert receiver.received[-1].authorization == "Bearer event-token"
    assert receiver.received[-1].body == event.model_dump(mode="json")
    assert [e.id for e in reporter.delivered] == [event.id]


async def test_no_retry_on_401_and_later_events_are_not_sent(receiver: EventReceiver) -> None:
    reporter = EventReporter(receiver.url("call_1"), "wrong-token", options=FAST)
    reporter.send(AgentEvent(type="agent.started"))
    reporter.send(AgentEvent(type="call.answered"))
    await reporter.aclose(timeout=5)
    assert [r.status for r in receiver.received] == [401]
    assert reporter.delivered == []


async def test_send_never_blocks(receiver: EventReceiver) -> None:
    receiver.delay_seconds = 0.3
    reporter = EventReporter(receiver.url("call_1"), receiver.token, options=FAST)
    for _ in range(20):
        reporter.send(AgentEvent(type="call.answered"))
    # All 20 returned with none sent yet: sending happens in the background, never in send().
    assert reporter.pending == 20
    assert receiver.received == []
    await reporter.aclose(timeout=0.1)


async def test_unreachable_api_does_not_raise_and_flush_is_bounded() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{dead_port}/v1/internal/calls/c/events"
    reporter = EventReporter(url, "t", options=ReporterOptions(initial_backoff_seconds=0.5))
    reporter.send(AgentEvent(type="call.ended"))
    started = time.perf_counter()
    await reporter.aclose(timeout=0.5)
    assert time.perf_counter() - started < 2.0
    assert reporter.delivered == []


async def test_flush_at_shutdown_delivers_everything_in_order(receiver: EventReceiver) -> None:
    receiver.statuses = [500]
    reporter = EventReporter(receiver.url("call_9"), receiver.token, options=FAST)
    types = ["agent.started", "call.answered", "call.transcript", "call.ended"]
    for event_type in types:
        reporter.send(AgentEvent(type=event_type))  # type: ignore[arg-type]
    await reporter.aclose(timeout=5)
    assert [b["type"] for b in receiver.applied()] == types
    assert reporter.pending == 0
