"""`POST /api/v1/business/{businessId}/call/initiate` and `GET .../call/{callId}`, as Iqra's
call API takes them (docs/compat.md).

The business is the workspace's numeric alias; a key of another business is refused
(`PERMISSION_DENIED`) without saying whether that business exists. The body is
`multipart/form-data` (at most `FORM_BODY_LIMIT`, refused on its Content-Length before a
byte is read, or at the first chunk past it), urlencoded or JSON, and becomes the native
call body. Every refusal is `{"Success": false, "Code": "<Operation>:<CODE>", "Message",
"Data": null}` with the status of Outdial's own refusal; `ERROR_CODES` maps Outdial's codes
onto Iqra's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.auth import Credentials, credentials_workspace
from api.errors import ApiError
from api.ids import is_valid_id
from api.routes.compat.common import (
    HOOK_ROUTE_PREFIX,
    accept,
    caller,
    iso_utc,
    resources,
    storage_error,
)
from api.routes.compat.forms import read_fields
from api.schemas.compat import (
    CallFound,
    CallIds,
    InitiateForm,
    IqraCall,
    IqraError,
    IqraStatus,
)
from api.store.calls import get_workspace_call
from sip.numbers import number_id

INITIATE_PATH = "/api/v1/business/{business_id}/call/initiate"
CALL_PATH = "/api/v1/business/{business_id}/call/{call_id}"
FORM_BODY_LIMIT = 10 * 1024 * 1024
_ALIAS = re.compile(r"[1-9][0-9]{0,17}")
# The fields sent as `Name[Key]=value` in a form (objects in JSON).
MAPS = ("DynamicVariables", "Metadata")

IqraCode = Literal[
    "INSUFFICIENT_BALANCE",
    "INVALID_NUMBER",
    "INVALID_AGENT",
    "INVALID_NUMBER_ID",
    "PERMISSION_DENIED",
    "BUSINESS_DISABLED",
    "NOT_FOUND",
    "EXCEPTION",
]
# Outdial's refusal code -> Iqra's (any other: EXCEPTION). A destination the workspace may
# not dial is PERMISSION_DENIED (the number is valid, the business may not call it); a
# caller number whose trunk was withdrawn is INVALID_NUMBER_ID (that number cannot be used).
ERROR_CODES: dict[str, IqraCode] = {
    "UNAUTHORIZED": "PERMISSION_DENIED",
    "PERMISSION_DENIED": "PERMISSION_DENIED",
    "WORKSPACE_DISABLED": "BUSINESS_DISABLED",
    "INSUFFICIENT_BALANCE": "INSUFFICIENT_BALANCE",
    "INVALID_NUMBER": "INVALID_NUMBER",
    "NUMBER_NOT_ALLOWED": "PERMISSION_DENIED",
    "DO_NOT_CALL": "PERMISSION_DENIED",
    "INVALID_AGENT": "INVALID_AGENT",
    "WORKER_NAME_NOT_ALLOWED": "INVALID_AGENT",
    "INVALID_NUMBER_ID": "INVALID_NUMBER_ID",
    "TRUNK_NOT_ASSIGNED": "INVALID_NUMBER_ID",
    "NOT_FOUND": "NOT_FOUND",
}
# A native VALIDATION_ERROR on one of these body fields is Iqra's code for that field.
_FIELD_CODES: dict[str, IqraCode] = {
    "to": "INVALID_NUMBER",
    "call_agent_id": "INVALID_AGENT",
    "from_number": "INVALID_NUMBER_ID",
}

# Iqra's lifecycle over Outdial's statuses (tests/test_compat_iqra.py: every status is here).
STATUSES: dict[str, IqraStatus] = {  # keys: agent_runtime.contract.CallStatus
    "scheduled": "Queued",
    "queued": "Queued",
    "dispatching": "Processing",
    "waiting_for_agent": "Processing",
    "dialing": "Processing",
    "ringing": "Processing",
    "in_progress": "In Progress",
    "completed": "Completed",
    "no_answer": "Completed",
    "busy": "Completed",
    "failed": "Failed",
    "canceled": "Failed",
}


router = APIRouter(tags=["compatibility"])


def _refusal(operation: str, exc: ApiError) -> JSONResponse:
    code = ERROR_CODES.get(exc.code, "EXCEPTION")
    if exc.code == "VALIDATION_ERROR":
        fields = [error.get("field") for error in exc.details.get("errors", [])]
        code = next((_FIELD_CODES[f] for f in fields if f in _FIELD_CODES), "EXCEPTION")
    body = {"Success": False, "Code": f"{operation}:{code}", "Message": exc.message, "Data": None}
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _business_caller(request: Request, hook_token: str | None, business: str) -> Credentials:
    """The caller's credentials, if they open the business in the path."""
    creds = await caller(request, hook_token)
    store, _ = resources(request)
    try:
        workspace = await credentials_workspace(store, creds)
    except RedisError as exc:
        raise storage_error() from exc
    if not _ALIAS.fullmatch(business) or workspace.alias != int(business):
        raise ApiError(403, "PERMISSION_DENIED", f"this key does not open business {business}")
    return creds


def _text(fields: dict[str, Any], name: str, required: bool) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(422, "VALIDATION_ERROR", f"{name} is required", _field(name))
        return None
    if not isinstance(value, str):
        raise ApiError(422, "VALIDATION_ERROR", f"{name} must be a string", _field(name))
    return value


# Iqra's field names -> the native body's, so a native refusal can name the vendor's field.
_NATIVE_FIELDS = {"RecipientNumber": "to", "AgentId": "call_agent_id", "NumberId": "from_number"}


def _field(name: str) -> dict[str, Any]:
    return {"errors": [{"field": _NATIVE_FIELDS.get(name, name), "message": "invalid"}]}


def _map(fields: dict[str, Any], name: str) -> dict[str, Any]:
    value = fields.get(name) or {}
    if not isinstance(value, dict):
        raise ApiError(422, "VALIDATION_ERROR", f"{name} must be an object", _field(name))
    return value


def _scheduled_at(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        message = f"ScheduledTime {text[:40]!r} is not an ISO 8601 time"
        raise ApiError(422, "VALIDATION_ERROR", message, _field("ScheduledTime")) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def native_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The native call body of an Iqra request; a bad field is an ApiError naming it."""
    native: dict[str, Any] = {
        "to": _text(fields, "RecipientNumber", required=True),
        "from_number": _text(fields, "NumberId", required=True),
        "call_agent_id": _text(fields, "AgentId", required=True),
        "dynamic_variables": _map(fields, "DynamicVariables"),
        "metadata": _map(fields, "Metadata"),
    }
    campaign = _text(fields, "CampaignId", required=False)
    if campaign is not None:
        native["campaign_id"] = campaign
    scheduled = _text(fields, "ScheduledTime", required=False)
    if scheduled is not None:
        native["scheduled_at"] = _scheduled_at(scheduled)
    return native


async def _initiate(request: Request, business_id: str, hook_token: str | None) -> JSONResponse:
    try:
        creds = await _business_caller(request, hook_token, business_id)
        fields = await read_fields(request, FORM_BODY_LIMIT, MAPS)
        accepted = await accept(request, creds, native_body(fields))
    except ApiError as exc:
        return _refusal("InitiateCall", exc)
    return JSONResponse(CallIds(Success=True, Data=[accepted["callId"]]).model_dump())


async def _get_call(
    request: Request, business_id: str, call_id: str, hook_token: str | None
) -> JSONResponse:
    try:
        creds = await _business_caller(request, hook_token, business_id)
        call = None
        if is_valid_id(call_id):
            store, _ = resources(request)
            try:
                call = await get_workspace_call(store, creds.workspace_id, call_id)
            except RedisError as exc:
                raise storage_error() from exc
        if call is None:
            raise ApiError(404, "NOT_FOUND", f"call {call_id[:64]} not found")
    except ApiError as exc:
        return _refusal("GetCall", exc)
    data = IqraCall(
        Id=call.id,
        Status=STATUSES[call.status],
        RecipientNumber=call.to,
        NumberId=number_id(call.from_number) if call.from_number else None,
        AgentId=call.agent_id,
        CampaignId=call.campaign_id,
        CreatedAt=iso_utc(call.created_at),
        ScheduledTime=iso_utc(call.scheduled_at) if call.scheduled_at is not None else None,
        EndedAt=iso_utc(call.ended_at) if call.ended_at is not None else None,
        EndReason=call.end_reason,
        DynamicVariables=call.dynamic_variables,
        Metadata=call.metadata,
    )
    return JSONResponse(CallFound(Success=True, Data=data).model_dump())


def _errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": IqraError, "description": description}
        for status, description in descriptions.items()
    }


_AUTH = {
    401: "PERMISSION_DENIED: the key opens no business",
    403: "PERMISSION_DENIED (a key of another business, a destination the business may not "
    "call or a number on its do-not-call list), BUSINESS_DISABLED",
    503: "EXCEPTION: storage is unavailable, retry (with the same Idempotency-Key)",
}
_FORM_SCHEMA = {"schema": InitiateForm.model_json_schema()}
# The path's ids as Iqra documents them; the routes read them as text themselves, so that a
# malformed one is refused in Iqra's shape (a business that is not this key's, a call that
# is not found) rather than by FastAPI's validation.
_BUSINESS = {
    "name": "business_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "description": "The workspace's alias"},
}
_CALL = {
    "name": "call_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}


@router.post(
    INITIATE_PATH,
    operation_id="iqra_initiate_call",
    summary="Place a call (Iqra's `call/initiate`)",
    description="`businessId` is the workspace's numeric alias. Also served under the "
    "integration base URL (`/hooks/<token>/api/v1/...`, no header). See docs/compat.md.",
    response_model=CallIds,
    responses=_errors(
        _AUTH
        | {
            400: "INVALID_NUMBER, INVALID_NUMBER_ID, EXCEPTION (a form that does not parse)",
            402: "INSUFFICIENT_BALANCE",
            404: "INVALID_AGENT",
            409: "EXCEPTION: the Idempotency-Key was used with another body",
            413: "EXCEPTION: the body is over 10 MB",
            415: "EXCEPTION: neither a form nor JSON",
            422: "INVALID_NUMBER, INVALID_AGENT, INVALID_NUMBER_ID, EXCEPTION: a field is "
            "missing or invalid",
        }
    ),
    openapi_extra={
        "parameters": [_BUSINESS],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": _FORM_SCHEMA,
                "application/json": _FORM_SCHEMA,
            },
        },
    },
)
async def initiate_call(request: Request, business_id: str) -> JSONResponse:
    return await _initiate(request, business_id, None)


@router.post(HOOK_ROUTE_PREFIX + INITIATE_PATH, include_in_schema=False)
async def initiate_call_by_hook(
    request: Request, business_id: str, hook_token: str
) -> JSONResponse:
    return await _initiate(request, business_id, hook_token)


@router.get(
    CALL_PATH,
    operation_id="iqra_get_call",
    summary="A call's status (Iqra's lifecycle names)",
    response_model=CallFound,
    responses=_errors(_AUTH | {404: "NOT_FOUND: no such call in this business"}),
    openapi_extra={"parameters": [_BUSINESS, _CALL]},
)
async def get_call(request: Request, business_id: str, call_id: str) -> JSONResponse:
    return await _get_call(request, business_id, call_id, None)


@router.get(HOOK_ROUTE_PREFIX + CALL_PATH, include_in_schema=False)
async def get_call_by_hook(
    request: Request, business_id: str, call_id: str, hook_token: str
) -> JSONResponse:
    return await _get_call(request, business_id, call_id, hook_token)
