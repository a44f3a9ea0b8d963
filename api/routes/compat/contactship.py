"""`POST /v1/calls/single-phone-call`, as Contactship's call API takes it (docs/compat.md).

`full_name`, `email`, `country` and each `additional_data` pair become the call's dynamic
variables; `delay` (minutes) or `schedule` (`{"date"}` or `{"datetime"}`, ISO 8601) make it a
scheduled call; `webhook_url` is its callback URL (Outdial's signed events). A bad body is a
400 naming every field that is wrong (`message`: a list); any other refusal has the status
of Outdial's own and its message: `{"statusCode", "error", "message"}`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agent_runtime.contract import VARIABLE_NAME
from api.errors import ApiError
from api.routes.compat.common import (
    HOOK_ROUTE_PREFIX,
    accept_json,
    is_scalar,
    iso_utc,
)
from api.schemas.calls import MAX_DELAY_SECONDS
from api.schemas.compat import CallCreated, ContactshipError, SinglePhoneCall

PATH = "/v1/calls/single-phone-call"
SCHEDULE_KEYS = ("date", "datetime")
# The variables the contact's own fields become (an additional_data key may not repeat them).
CONTACT_VARIABLES = ("full_name", "email", "country")
_VARIABLE = re.compile(VARIABLE_NAME + r"\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\Z")


router = APIRouter(tags=["compatibility"])


class _Problems:
    """Every wrong field of a body, in order, so that one answer names them all."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def text(self, body: dict[str, Any], name: str, required: bool) -> str | None:
        value = body.get(name)
        if value is None or value == "":
            if required:
                self.add(f"{name} is required")
            return None
        if not isinstance(value, str):
            self.add(f"{name} must be a string")
            return None
        return value


# The native body's fields by the names Contactship's clients sent, and the field a native
# code is about: a refusal names what the client sent, not what Outdial made of it.
_VENDOR_FIELDS = {
    "to": "to_number",
    "call_agent_id": "agent_id",
    "callback_url": "webhook_url",
    "dynamic_variables": "additional_data",
    "scheduled_at": "schedule",
    "delay_seconds": "delay",
}
_CODE_FIELDS = {
    "INVALID_NUMBER": "to_number",
    "DO_NOT_CALL": "to_number",
    "INVALID_NUMBER_ID": "from_number",
    "INVALID_CALLBACK_URL": "webhook_url",
    "INVALID_AGENT": "agent_id",
}


def _vendor_field(native: str) -> str:
    head, dot, rest = native.partition(".")
    if head == "dynamic_variables" and rest in CONTACT_VARIABLES:
        return rest
    return _VENDOR_FIELDS.get(head, head) + dot + rest


def _message(exc: ApiError) -> str | list[str]:
    """Our own checks' list of messages; a native refusal's, with the vendor's field names."""
    problems = exc.details.get("messages")
    if isinstance(problems, list):
        return problems
    errors = exc.details.get("errors") if exc.code == "VALIDATION_ERROR" else None
    if isinstance(errors, list) and errors:
        return [f"{_vendor_field(str(e.get('field', '')))}: {e.get('message')}" for e in errors]
    text = exc.message
    for native, vendor in _VENDOR_FIELDS.items():
        if len(native) > 2:  # `to` is too common a word to rename in a sentence
            text = text.replace(native, vendor)
    field = _CODE_FIELDS.get(exc.code)
    return f"{field}: {text}" if field else text


def _refusal(exc: ApiError) -> JSONResponse:
    status = 400 if exc.status == 422 else exc.status
    body = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": _message(exc)}
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _when(body: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    """`delay_seconds` or `scheduled_at` of the native body (neither: now)."""
    delay = body.get("delay", 0)
    schedule = body.get("schedule")
    if delay is None:
        delay = 0
    if isinstance(delay, bool) or not isinstance(delay, int):
        problems.add("delay must be a whole number of minutes")
        delay = 0
    elif not 0 <= delay <= MAX_DELAY_SECONDS // 60:
        problems.add(f"delay must be 0 to {MAX_DELAY_SECONDS // 60} minutes")
        delay = 0
    if schedule is None:
        return {"delay_seconds": delay * 60} if delay else {}
    if not isinstance(schedule, dict):
        problems.add('schedule must be an object: {"date": "<ISO 8601>"}')
        return {}
    unknown = sorted(schedule.keys() - set(SCHEDULE_KEYS))
    given = [key for key in SCHEDULE_KEYS if schedule.get(key) is not None]
    if unknown:
        problems.add(f"schedule.{unknown[0]} is not accepted: send schedule.date or .datetime")
    if len(given) != 1:
        problems.add("schedule must hold one of date or datetime")
        return {}
    if delay:
        problems.add("send delay or schedule, not both")
    at = _instant(schedule[given[0]], f"schedule.{given[0]}", problems)
    return {"scheduled_at": at} if at is not None else {}


def _instant(value: Any, name: str, problems: _Problems) -> str | None:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    problems.add(f"{name} must be an ISO 8601 date or time")
    return None


def _variables(body: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    full_name = problems.text(body, "full_name", required=True)
    if full_name is not None:
        variables["full_name"] = full_name
    email = problems.text(body, "email", required=False)
    if email is not None:
        if _EMAIL.match(email):
            variables["email"] = email
        else:
            problems.add("email must be an email address")
    country = problems.text(body, "country", required=False)
    if country is not None:
        variables["country"] = country
    pairs = body.get("additional_data")
    if pairs is None:
        pairs = []
    if not isinstance(pairs, list):
        problems.add("additional_data must be a list of {key, value}")
        return variables
    for index, pair in enumerate(pairs):
        where = f"additional_data[{index}]"
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            problems.add(f"{where} must be an object with a string key")
            continue
        key, value = pair["key"], pair.get("value")
        if not _VARIABLE.match(key) or len(key) > 64:
            problems.add(f"{where}.key {key[:64]!r} is not a variable name")
        elif key in variables or key in CONTACT_VARIABLES:
            problems.add(f"{where}.key {key!r} is given twice")
        elif not is_scalar(value):
            problems.add(f"{where}.value must be a string, a number or a boolean")
        else:
            variables[key] = value
    return variables


def native_body(body: dict[str, Any]) -> dict[str, Any]:
    """The native call body of a Contactship request; every bad field is named in one 400."""
    problems = _Problems()
    native: dict[str, Any] = {
        "from_number": problems.text(body, "from_number", required=True),
        "to": problems.text(body, "to_number", required=True),
        "call_agent_id": problems.text(body, "agent_id", required=True),
        "dynamic_variables": _variables(body, problems),
    }
    webhook = problems.text(body, "webhook_url", required=False)
    if webhook is not None:
        native["callback_url"] = webhook
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.add("metadata must be an object")
    elif metadata:
        native["metadata"] = metadata
    native |= _when(body, problems)
    if problems.messages:
        details = {"messages": problems.messages}
        raise ApiError(400, "VALIDATION_ERROR", "; ".join(problems.messages), details)
    return native


async def _single_call(request: Request, hook_token: str | None) -> JSONResponse:
    try:
        native, accepted = await accept_json(request, hook_token, native_body)
    except ApiError as exc:
        return _refusal(exc)
    answer = CallCreated(
        call_id=accepted["callId"],
        agent_id=native["call_agent_id"],
        contact_id=None,
        created_at=iso_utc(),
    )
    return JSONResponse(answer.model_dump())


@router.post(
    PATH,
    operation_id="contactship_single_phone_call",
    summary="Place a call (Contactship's `single-phone-call`)",
    description="The workspace is found from its key alone (`x-api-key`, `Authorization: "
    "Bearer` or `Token`), or from the integration base URL (`/hooks/<token>/v1/calls/...`, "
    "no header). See docs/compat.md.",
    response_model=CallCreated,
    responses={
        status: {"model": ContactshipError, "description": description}
        for status, description in {
            400: "Bad Request: every missing or invalid field named (`message`: a list), "
            "or an invalid number",
            401: "Unauthorized: the key opens no workspace",
            402: "Payment Required: the balance cannot cover a minute",
            403: "Forbidden: a disabled workspace, a destination it may not call or one on "
            "its do-not-call list",
            404: "Not Found: no such agent",
            409: "Conflict: the Idempotency-Key was used with another body",
            413: "Payload Too Large",
            503: "Service Unavailable: retry with the same Idempotency-Key",
        }.items()
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SinglePhoneCall.model_json_schema()}},
        }
    },
)
async def single_phone_call(request: Request) -> JSONResponse:
    return await _single_call(request, None)


@router.post(HOOK_ROUTE_PREFIX + PATH, include_in_schema=False)
async def single_phone_call_by_hook(request: Request, hook_token: str) -> JSONResponse:
    return await _single_call(request, hook_token)
