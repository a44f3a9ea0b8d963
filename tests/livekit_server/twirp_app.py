"""The aiohttp request handler for Twirp: recording, fault injection, auth, routing.

Order for every request: record it (status None) -> pick a fault -> delay_before ->
a fault that acts "instead of applying" answers / drops here -> auth, grants and the RPC
itself -> delay_after -> a fault that acts "after applying" answers / drops here ->
answer and set the record's status. A client that gives up during a delay does not stop
the server from applying the request, as with a real server. A delay ends early when the
test releases it; `reset()` cancels every held request (dropped, never applied later), so
no request outlives the test that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from .faults import Fault, FaultTable
from .rpcs import RPCS, Outcome
from .state import JobInfo, RecordedRequest, ServerState
from .twirp import (
    JSON,
    PROTOBUF,
    AuthStyle,
    PlainHTTPError,
    TwirpError,
    authenticate,
    bad_route,
    check_grants,
    decode,
    encode,
    media_type,
)

DROPPED = 0  # RecordedRequest.status of a request whose connection was closed on purpose


@dataclass(eq=False)
class _Hold:
    """A request waiting out an injected delay."""

    fault: Fault
    record: RecordedRequest
    wake: asyncio.Event
    canceled: bool = False


class TwirpApp:
    def __init__(
        self,
        state: ServerState,
        faults: FaultTable,
        api_key: str,
        api_secret: str,
        auth_style: AuthStyle,
        on_jobs: Callable[[list[JobInfo]], None],
        on_ended: Callable[[list[JobInfo]], Awaitable[None]],
    ) -> None:
        self._state = state
        self._faults = faults
        self._key = api_key
        self._secret = api_secret
        self._auth_style = auth_style
        self._on_jobs = on_jobs
        self._on_ended = on_ended
        self._holds: set[_Hold] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        received_at = time.time()
        full_service, _, method = request.match_info["tail"].partition("/")
        service = full_service.removeprefix("livekit.")
        record = RecordedRequest(
            service=service,
            method=method,
            request=None,
            claims={},
            received_at=received_at,
            request_id=request.headers.get("X-Livekit-Request-Id", ""),
        )
        body = await request.read()
        record.request = _decoded_or_none(request, service, method, body)
        with self._state.cond:
            self._state.counts[(service, method)] += 1
            if self._state.record_requests:
                self._state.requests.append(record)
            self._state.cond.notify_all()

        fault = self._faults.take(service, method)
        if fault is not None and not await self._hold(fault, record, fault.delay_before):
            return self._drop(request, record)
        if fault is not None and (fault.is_error or fault.drop) and not fault.applies_first:
            return self._fault_answer(request, record, fault)

        response = await self._apply(request, record, full_service, body)

        if fault is not None and not await self._hold(fault, record, fault.delay_after):
            return self._drop(request, record)
        if fault is not None and (fault.is_error or fault.drop) and fault.applies_first:
            return self._fault_answer(request, record, fault)
        return self._finish(record, response)

    async def _hold(self, fault: Fault, record: RecordedRequest, seconds: float) -> bool:
        """Wait out an injected delay (or until released); False if the request was
        canceled meanwhile (reset): it must then neither apply nor answer."""
        if seconds <= 0:
            return True
        hold = _Hold(fault, record, asyncio.Event())
        self._holds.add(hold)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold.wake.wait(), seconds)
        finally:
            self._holds.discard(hold)
        return not hold.canceled

    async def end_holds(self, fault: Fault | None = None, *, cancel: bool) -> int:
        """End the delays of the requests held now (all, or `fault`'s): released requests
        go on as if the delay had run out, canceled ones are dropped. Runs on the server
        loop; returns how many there were."""
        ended = [h for h in self._holds if fault is None or h.fault is fault]
        for hold in ended:
            self._holds.discard(hold)
            hold.canceled = cancel
            hold.wake.set()
        return len(ended)

    async def held(self) -> list[RecordedRequest]:
        return [hold.record for hold in self._holds]

    async def _apply(
        self, request: web.Request, record: RecordedRequest, full_service: str, body: bytes
    ) -> web.Response:
        path = request.path
        rpc = RPCS.get((record.service, record.method))
        ctype = media_type(request.content_type)
        try:
            if request.method != "POST":
                raise bad_route(
                    request.method, path, f"unsupported method {request.method} (only POST)"
                )
            if not full_service.startswith("livekit.") or rpc is None:
                raise bad_route(request.method, path)
            if ctype not in (PROTOBUF, JSON):
                raise bad_route(request.method, path, f"unexpected Content-Type: {ctype!r}")
            record.request = decode(body, ctype, rpc.request_cls)
            header = request.headers.get("Authorization")
            try:
                record.claims = authenticate(header, self._key, self._secret, self._auth_style)
            except (PlainHTTPError, TwirpError):
                record.claims = _unverified_claims(header)
                raise
            room = getattr(record.request, rpc.room_field) if rpc.room_field else ""
            check_grants(record.claims, rpc.grants, room, self._auth_style)
            outcome: Outcome = rpc.handler(self._state, record.request)
        except (TwirpError, PlainHTTPError) as exc:
            if isinstance(exc, TwirpError):
                record.error_code = exc.code
            return exc.response()
        except Exception as exc:  # a bug in the test server: say so instead of hanging
            record.error_code = "internal"
            return TwirpError("internal", f"test server error: {exc!r}").response()
        if outcome.new_jobs:
            self._on_jobs(outcome.new_jobs)
        if outcome.ended_jobs:
            await self._on_ended(outcome.ended_jobs)
        record.response = outcome.response
        return encode(outcome.response, ctype)

    def _fault_answer(
        self, request: web.Request, record: RecordedRequest, fault: Fault
    ) -> web.StreamResponse:
        if fault.drop:
            return self._drop(request, record)
        code, status = fault.error_code_and_status()
        error = TwirpError(code, fault.message, meta=fault.meta, status=status)
        record.error_code = code
        return self._finish(record, error.response())

    def _drop(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        """Close the socket without a byte of answer: the client sees a disconnect."""
        if request.transport is not None:
            request.transport.close()
        self._set_status(record, DROPPED, None)
        # aiohttp skips writing to a closed transport quietly (raising would log)
        return web.Response(status=204)

    def _finish(self, record: RecordedRequest, response: web.Response) -> web.Response:
        self._set_status(record, response.status, record.error_code)
        return response

    def _set_status(self, record: RecordedRequest, status: int, code: str | None) -> None:
        with self._state.cond:
            record.status = status
            record.error_code = code
            self._state.cond.notify_all()


def _decoded_or_none(request: web.Request, service: str, method: str, body: bytes) -> Any:
    """The request's message, recorded even when a fault answers before applying it."""
    rpc = RPCS.get((service, method))
    ctype = media_type(request.content_type)
    if rpc is None or ctype not in (PROTOBUF, JSON):
        return None
    try:
        return decode(body, ctype, rpc.request_cls)
    except Exception:  # _apply answers it as Twirp does
        return None


def _unverified_claims(header: str | None) -> dict[str, Any]:
    """Best-effort claims of a token that failed verification, for debugging records."""
    if not header:
        return {}
    token = header.removeprefix("Bearer ")
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
