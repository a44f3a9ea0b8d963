"""ASGI middleware: request body limits enforced before anything parses the body.

Invariant: every body is bounded. LiveKit's webhooks have their own, larger bound: its
`agent_job_*` events carry the call's whole dispatch contract (agent instructions up to
20,000 characters, 16 KiB each of variables and metadata, JSON-escaped twice), which does
not fit the API's 64 KiB default, and refusing them would lose the job's outcome.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LIVEKIT_WEBHOOK_PATH = "/v1/livekit/webhook"
LIVEKIT_WEBHOOK_BODY_LIMIT = 1024 * 1024
# Route limits that hold whatever the app passes (it may still override them).
BUILT_IN_LIMITS = {LIVEKIT_WEBHOOK_PATH: LIVEKIT_WEBHOOK_BODY_LIMIT}

_TOO_LARGE = {
    "status": "error",
    "code": "PAYLOAD_TOO_LARGE",
    "message": "request body is too large",
}


class BodyLimit:
    """Refuses bodies over `limit` bytes (per path prefix) with 413, streaming or not."""

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int,
        limits: dict[str, int],
        self_bounded: tuple[str, ...] = (),
    ) -> None:
        """`self_bounded`: path prefixes whose routes bound their bodies themselves (to
        refuse in a vendor's own shape, api/routes/compat/common.py's `read_body`)."""
        self.app = app
        self.default_limit = default_limit
        merged = BUILT_IN_LIMITS | limits
        self.limits = sorted(merged.items(), key=lambda item: -len(item[0]))
        self.self_bounded = self_bounded

    def _limit_for(self, path: str) -> int | None:
        if path.startswith(self.self_bounded):
            return None
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = json.dumps(_TOO_LARGE | {"details": {"limitBytes": limit}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
