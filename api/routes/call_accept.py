"""`POST /v1/api/call` served as plain ASGI, ahead of FastAPI's routing.

Why: this is the one endpoint clients call at volume, and FastAPI's per-request machinery
(routing, dependency solving, request and response objects) cost more than the accept
itself. Everything else stays on FastAPI; the endpoint's OpenAPI entry is added in
`api.app`.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import Credentials
from api.errors import ApiError, error_response, storage_unavailable
from api.metrics import CALLS_ACCEPTED, CALLS_REFUSED
from api.openapi import STORAGE, WORKSPACE_AUTH, raw_error_responses
from api.schemas.calls import CallAccepted, CallCreate
from api.services.calls import place_call

ACCEPT_CALL_PATH = "/v1/api/call"


class AcceptCallRoute:
    """Answers `POST /v1/api/call` itself; passes every other request to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ACCEPT_CALL_PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            refusal = error_response(405, "METHOD_NOT_ALLOWED", "use POST")
            refusal.headers["allow"] = "POST"
            await refusal(scope, receive, send)
            return
        state = scope["app"].state
        headers = Headers(scope=scope)
        try:
            creds = Credentials.from_headers(headers)
            body = await _read_body(receive)
            accepted = await place_call(
                state.resources.store, state.settings, creds, body, headers.get("idempotency-key")
            )
        except ApiError as exc:
            CALLS_REFUSED.labels(exc.code).inc()
            refusal = error_response(exc.status, exc.code, exc.message, exc.details)
        except RedisError as exc:
            CALLS_REFUSED.labels("SERVICE_UNAVAILABLE").inc()
            refusal = storage_unavailable(exc)
        else:
            CALLS_ACCEPTED.inc()
            await _send_json(send, accepted)
            return
        await refusal(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "BAD_REQUEST", "client disconnected before sending the body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, payload: dict[str, Any]) -> None:
    body = to_json(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_ERRORS = (
    WORKSPACE_AUTH,
    STORAGE,
    {
        400: "INVALID_NUMBER, INVALID_NUMBER_ID, INVALID_CALLBACK_URL",
        402: "INSUFFICIENT_BALANCE (the workspace's minutes cannot cover the call's first one)",
        403: f"{WORKSPACE_AUTH[403]}, NUMBER_NOT_ALLOWED, TRUNK_NOT_ASSIGNED, "
        "WORKER_NAME_NOT_ALLOWED, DO_NOT_CALL (the number is on the workspace's do-not-call "
        "list)",
        404: "INVALID_AGENT",
        409: "IDEMPOTENCY_CONFLICT",
        413: "PAYLOAD_TOO_LARGE",
        422: "VALIDATION_ERROR, CALL_WINDOW_ZONE_UNKNOWN (the callee's time zone is not known: "
        "give an IANA timezone), CALL_WINDOW_NEVER_OPEN (the window never holds in all of "
        "the callee's zones for the agent-ready timeout)",
        503: f"{STORAGE[503]}, with the same Idempotency-Key",
    },
)


def accept_call_openapi() -> dict[str, Any]:
    """The OpenAPI operation of this route, which FastAPI's routing never sees (its
    credentials are added with every `/v1/api/` route's, by `api.openapi.document`)."""
    return {
        "tags": ["calls"],
        "summary": "Place an outbound call",
        "operationId": "create_call",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CallCreate.model_json_schema()}},
        },
        "responses": {
            "200": {
                "description": "The call is queued for dialing (or the first answer to its "
                "Idempotency-Key)",
                "content": {"application/json": {"schema": CallAccepted.model_json_schema()}},
            },
            **raw_error_responses(*_ERRORS),
        },
    }
