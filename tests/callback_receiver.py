"""A callback receiver on loopback for relay tests: per-path behaviour, every request kept."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support import free_port


@dataclass
class Received:
    path: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _ok(_: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


class Receiver:
    """A callback receiver on loopback: per-path behaviour, every request recorded."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        response = await self.behaviours.get(request.path, _ok)(request)
        self.received.append(Received(request.path, response.status, dict(request.headers), body))
        return response

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def delivered(self, path: str) -> list[dict[str, Any]]:
        """Payloads the receiver acknowledged (2xx), in arrival order."""
        return [r.payload for r in self.received if r.path == path and 200 <= r.status < 300]

    def attempts(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]
