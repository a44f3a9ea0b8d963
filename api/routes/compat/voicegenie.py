"""`POST /initiateCall`, as VoiceGenie's call API takes it (docs/compat.md).

Its body (`phone_number` in E.164, `agent_id`, `custom_data`) becomes the native call body
(`to`, `call_agent_id`, `dynamic_variables`); its answers are VoiceGenie's:
`{"success": true, "message", "data": {...}}`, and on any refusal
`{"success": false, "message", "error"}` with the status of Outdial's own refusal (a bad input
is 400 where Outdial says 422).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.errors import ApiError
from api.routes.compat.common import (
    HOOK_ROUTE_PREFIX,
    accept_json,
    is_scalar,
    iso_utc,
)
from api.schemas.compat import CallInitiated, InitiateCall, InitiatedCall, VoiceGenieError

PATH = "/initiateCall"
E164 = re.compile(r"\+[1-9][0-9]{1,14}\Z")


# Outdial's refusal code -> VoiceGenie's message (its `error` is Outdial's own message).
_MESSAGES = {
    "UNAUTHORIZED": "Unauthorized",
    "WORKSPACE_DISABLED": "Account disabled",
    "PERMISSION_DENIED": "Forbidden",
    "TRUNK_NOT_ASSIGNED": "Forbidden",
    "WORKER_NAME_NOT_ALLOWED": "Forbidden",
    "INVALID_NUMBER": "Invalid phone number",
    "NUMBER_NOT_ALLOWED": "Phone number not allowed",
    "DO_NOT_CALL": "Phone number on the do-not-call list",
    "INVALID_AGENT": "Agent not found",
    "INSUFFICIENT_BALANCE": "Insufficient balance",
    "PAYLOAD_TOO_LARGE": "Request too large",
    "IDEMPOTENCY_CONFLICT": "Idempotency conflict",
    "SERVICE_UNAVAILABLE": "Service unavailable",
}

router = APIRouter(tags=["compatibility"])


def _refusal(exc: ApiError) -> JSONResponse:
    status = 400 if exc.status == 422 else exc.status
    message = _MESSAGES.get(exc.code, "Invalid request" if status == 400 else "Request refused")
    headers = {"Retry-After": "1"} if status == 503 else None
    body = {"success": False, "message": message, "error": exc.message}
    return JSONResponse(body, status_code=status, headers=headers)


def native_body(body: dict[str, Any]) -> dict[str, Any]:
    """The native call body of a VoiceGenie request; a bad input is an ApiError naming it."""
    phone = body.get("phone_number")
    if not isinstance(phone, str) or not E164.match(phone):
        raise ApiError(400, "INVALID_NUMBER", "Phone number must be in E.164 format")
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise ApiError(400, "VALIDATION_ERROR", "agent_id is required (a string)")
    custom = body.get("custom_data", {})
    if custom is None:
        custom = {}
    if not isinstance(custom, dict):
        raise ApiError(400, "VALIDATION_ERROR", "custom_data must be an object")
    for name, value in custom.items():
        if not is_scalar(value):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"custom_data.{name} must be a string, a number or a boolean",
            )
    return {"to": phone, "call_agent_id": agent_id, "dynamic_variables": custom}


async def _initiate(request: Request, hook_token: str | None) -> JSONResponse:
    try:
        native, accepted = await accept_json(request, hook_token, native_body)
    except ApiError as exc:
        return _refusal(exc)
    answer = CallInitiated(
        success=True,
        message="Call initiated successfully",
        data=InitiatedCall(
            call_uuid=accepted["callId"],
            status="initiated",
            phone_number=native["to"],
            agent_id=native["call_agent_id"],
            initiated_at=iso_utc(),
        ),
    )
    return JSONResponse(answer.model_dump())


_DOCS: dict[str, Any] = {
    "summary": "Place a call (VoiceGenie's `initiateCall`)",
    "description": "The workspace is found from its key alone (`x-api-key`, `Authorization: "
    "Bearer` or `Token`), or from the integration base URL (`/hooks/<token>/initiateCall`, "
    "no header). See docs/compat.md.",
    "response_model": CallInitiated,
    "responses": {
        status: {"model": VoiceGenieError, "description": description}
        for status, description in {
            400: "Invalid phone number, a missing agent_id, custom_data not scalar",
            401: "Unauthorized: the key opens no workspace",
            402: "Insufficient balance",
            403: "Account disabled; Forbidden (a destination or trunk the workspace may not use); "
            "Phone number on the do-not-call list",
            404: "Agent not found",
            409: "Idempotency conflict",
            413: "Request too large",
            503: "Service unavailable: retry with the same Idempotency-Key",
        }.items()
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": InitiateCall.model_json_schema()}},
        }
    },
}


@router.post(PATH, operation_id="voicegenie_initiate_call", **_DOCS)
async def initiate_call(request: Request) -> JSONResponse:
    return await _initiate(request, None)


@router.post(HOOK_ROUTE_PREFIX + PATH, include_in_schema=False)
async def initiate_call_by_hook(request: Request, hook_token: str) -> JSONResponse:
    return await _initiate(request, hook_token)
