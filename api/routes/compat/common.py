"""What the vendor-compatible routes share: who is calling, the body within its bound, the
native accept, and the native answer's time.

Invariant: a compatibility route translates and nothing else. It builds Outdial's own call
body and hands it to `place_call` (the validation, idempotency, scheduling, call windows,
pacing, tenancy checks, limits, balances and events of `POST /v1/api/call`), then
translates the answer or the refusal into its vendor's shape; it stores nothing itself.
Every refusal, its own or the accept's, is an `ApiError` until the vendor module shapes it,
so each route has one place that writes its errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic_core import to_json
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect

from api.auth import Credentials, hook_credentials, key_only_credentials
from api.errors import ApiError
from api.metrics import CALLS_ACCEPTED, CALLS_REFUSED
from api.security import HOOKS_PREFIX
from api.services.calls import place_call
from api.settings import Settings
from api.store.base import Store

# Every compatibility route also answers under its workspace's integration base URL, which
# holds the secret instead of a header (`/hooks/<token>/initiateCall`).
HOOK_ROUTE_PREFIX = HOOKS_PREFIX + "{hook_token}"
# The JSON bodies of the compatibility routes are bounded like the native accept's.
JSON_BODY_LIMIT = 64 * 1024


def resources(request: Request) -> tuple[Store, Settings]:
    state = request.app.state
    return state.resources.store, state.settings


async def caller(request: Request, hook_token: str | None) -> Credentials:
    """The credentials of the request: its integration token, else its key alone (x-api-key,
    Bearer or Token). 401 when neither opens a workspace, whichever it was."""
    store, _ = resources(request)
    try:
        if hook_token is not None:
            return await hook_credentials(store, hook_token)
        return await key_only_credentials(store, request.headers)
    except RedisError as exc:
        raise storage_error() from exc


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (PAYLOAD_TOO_LARGE, 413) as soon as it is known to exceed `limit`:
    by its Content-Length before a byte is read, else at the first chunk past it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ApiError(400, "BAD_REQUEST", "client disconnected before sending the body") from exc
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, within `JSON_BODY_LIMIT`; BAD_REQUEST (400) otherwise."""
    body = json_object(await read_body(request, JSON_BODY_LIMIT))
    if body is None:
        raise ApiError(400, "BAD_REQUEST", "the body must be a JSON object")
    return body


def too_large(limit: int) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"the body is over {limit} bytes", {"limit": limit})


def storage_error() -> ApiError:
    return ApiError(503, "SERVICE_UNAVAILABLE", "storage is unavailable, retry later")


async def accept(request: Request, creds: Credentials, native: dict[str, Any]) -> dict[str, Any]:
    """`POST /v1/api/call` with `native` as its body (and the request's Idempotency-Key):
    the native answer, or the native refusal as an ApiError."""
    store, settings = resources(request)
    key = request.headers.get("idempotency-key")
    # Counted as the native route counts its accepts and refusals (api/routes/call_accept.py).
    try:
        accepted = await place_call(store, settings, creds, to_json(native), key)
    except ApiError as exc:
        CALLS_REFUSED.labels(exc.code).inc()
        raise
    except RedisError as exc:
        CALLS_REFUSED.labels("SERVICE_UNAVAILABLE").inc()
        raise storage_error() from exc
    CALLS_ACCEPTED.inc()
    return accepted


async def accept_json(
    request: Request,
    hook_token: str | None,
    translate: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JSON-bodied vendor route's whole path: its caller, its body translated into the
    native one, the accept. The native body and answer, or the refusal as an ApiError."""
    creds = await caller(request, hook_token)
    native = translate(await json_body(request))
    return native, await accept(request, creds, native)


def iso_utc(ms: int | None = None) -> str:
    """An instant (ms since the epoch; now by default) as ISO 8601 in UTC, to the ms."""
    moment = datetime.now(UTC) if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (NaN and Infinity are not JSON;
    nesting too deep to parse is not one either)."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def is_scalar(value: Any) -> bool:
    """A dynamic variable's value (`agent_runtime.contract.Scalar`): a string, a finite
    number, a boolean or null."""
    if value is None or isinstance(value, bool | str | int):
        return True
    return isinstance(value, float) and value == value and abs(value) != float("inf")
