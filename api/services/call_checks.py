"""The checks of a call body before it is accepted, and the accept they build: one step that
`POST /v1/api/call` (`calls.place_call`) and `POST /v1/api/calls/batch`
(`call_batch.place_calls`) share.

Invariant: a body is refused or accepted the same way whichever route carries it. Its checks
run in one order (number, destination policy, sizes, callback URL, agent, worker name,
caller id, trunk, window), on what the accept read in its one round trip (`AcceptContext`),
and end in the store's one accept script (`AcceptWrite`), which a caller runs alone or with
others; its outcome becomes the answer here too (`accepted_answer`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import string
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import to_json

from agent_runtime.contract import VARIABLE_NAME
from api.callback_urls import CallbackUrlChecks, CallbackUrlError
from api.errors import ApiError
from api.schemas.calls import MAX_SECTION_BYTES, MAX_VARIABLES, CallCreate, CallReschedule
from api.services.agents import check_worker_name
from api.services.call_windows import window_to_json
from api.services.due_time import chosen_window, due_in_window
from api.settings import Settings
from api.store.agents import AgentRecord
from api.store.base import Store
from api.store.billing import RESERVE_SECONDS
from api.store.call_record import CallBudgets, CallDraft
from api.store.calls import AcceptOutcome, AcceptWrite, accept_call_write
from api.store.clock import now_ms
from api.store.numbers import pick_caller, trunk_allowed
from api.store.scheduled_calls import Due, accept_scheduled_write
from api.store.workspaces import Workspace
from sip import InvalidNumberError, to_e164
from sip.numbers import (
    Destination,
    NumberNotAllowedError,
    check_destination,
    number_from_id,
    parse_countries,
    parse_number,
)

logger = logging.getLogger("outdial.api")

_VARIABLE_NAME = re.compile(VARIABLE_NAME + r"\Z")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")
_ROOM_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
# A room name's random suffix: each byte as one of 36 characters. 36 does not divide 256:
# a bias of 1.6% per character, harmless for a name suffix.
_ROOM_SUFFIX_OF_BYTE = bytes(ord(_ROOM_SUFFIX_ALPHABET[byte % 36]) for byte in range(256))


@dataclass(frozen=True, slots=True)
class AcceptContext:
    """What the checks of a workspace's accept use besides the body (read in one round trip
    with the credentials: `api.store.accept_reads`, `api.store.call_batch`)."""

    workspace: Workspace
    # E.164 -> the stored number JSON (`numbers.pick_caller` decodes the one it picks).
    numbers: dict[str, str]
    assigned_trunks: set[str]
    callbacks: CallbackUrlChecks


def json_size(value: Any) -> int:
    """How many bytes `value` takes as JSON (what MAX_SECTION_BYTES bounds)."""
    return len(to_json(value))


def check_variable_names(names: Collection[str]) -> None:
    """The names of a call's dynamic variables (the JSON body's keys, a CSV file's columns):
    at most MAX_VARIABLES, each 1-64 characters of `VARIABLE_NAME`."""
    if len(names) > MAX_VARIABLES:
        raise ApiError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"at most {MAX_VARIABLES} dynamic_variables allowed",
            {"count": len(names)},
        )
    for name in names:
        if len(name) > 64:
            raise ApiError(
                413,
                "PAYLOAD_TOO_LARGE",
                "dynamic variable names are at most 64 characters",
                {"name": name[:80]},
            )
        if not _VARIABLE_NAME.match(name):
            raise ApiError(
                422,
                "VALIDATION_ERROR",
                f"dynamic variable name {name!r} must match [A-Za-z_][A-Za-z0-9_]*",
                {"errors": [{"field": f"dynamic_variables.{name}", "message": "invalid name"}]},
            )


def check_sizes(body: CallCreate) -> None:
    check_variable_names(body.dynamic_variables.keys())
    for section in ("dynamic_variables", "metadata"):
        size = json_size(getattr(body, section))
        if size > MAX_SECTION_BYTES:
            raise ApiError(
                413,
                "PAYLOAD_TOO_LARGE",
                f"{section} is over {MAX_SECTION_BYTES} bytes",
                {"field": section, "bytes": size},
            )


def request_fingerprint(body: CallCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            422, "VALIDATION_ERROR", "Idempotency-Key must be 1-255 printable ASCII characters"
        )


def replay(previous: dict[str, Any], fingerprint: str | None) -> dict[str, Any]:
    """The first answer stored under an idempotency key, if this request is the same one
    (`fingerprint`); else IDEMPOTENCY_CONFLICT (409)."""
    if previous.get("request_hash") != fingerprint:
        raise ApiError(
            409,
            "IDEMPOTENCY_CONFLICT",
            "this Idempotency-Key was used with a different request body",
        )
    return cast(dict[str, Any], previous["response"])


def check_destination_allowed(to: Destination, workspace: Workspace, settings: Settings) -> None:
    """NUMBER_NOT_ALLOWED unless policy lets the workspace dial `to` (toll fraud: high-cost
    numbers, and countries outside the workspace's or else the deployment's allowlist)."""
    countries = (
        settings.allowed_countries
        if workspace.allowed_countries is None
        else parse_countries(workspace.allowed_countries)
    )
    try:
        check_destination(
            to,
            allowed_countries=countries,
            allow_high_cost=settings.allow_high_cost_destinations,
        )
    except NumberNotAllowedError as exc:
        details = {"to": to.e164, "rule": exc.rule}
        raise ApiError(403, "NUMBER_NOT_ALLOWED", str(exc), details) from exc


async def prepare_call(
    store: Store,
    settings: Settings,
    body: CallCreate,
    agent: AgentRecord | None,
    context: AcceptContext,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> AcceptWrite:
    """The accept of a checked body (`agent`: the one it names, None when the workspace has
    none such), ready to run; the first check that fails raises its ApiError."""
    try:
        destination = parse_number(body.to)
    except InvalidNumberError as exc:
        raise ApiError(400, "INVALID_NUMBER", str(exc), {"to": body.to}) from exc
    workspace = context.workspace
    check_destination_allowed(destination, workspace, settings)
    to = destination.e164
    check_sizes(body)
    if body.callback_url is not None:
        try:
            await context.callbacks.check(body.callback_url)
        except CallbackUrlError as exc:
            raise ApiError(400, "INVALID_CALLBACK_URL", str(exc)) from exc
    if agent is None:
        raise ApiError(
            404,
            "INVALID_AGENT",
            f"agent {body.call_agent_id} not found",
            {"callAgentId": body.call_agent_id},
        )
    # an agent stored before the operator narrowed the list: no extra read, the JSON is here
    check_worker_name(agent.worker_name, settings)

    wanted = None
    if body.from_number is not None:
        try:
            # A registered number's id (`num_<digits>`) names it as its E.164 form does.
            wanted = number_from_id(body.from_number) or to_e164(body.from_number)
        except InvalidNumberError as exc:
            raise ApiError(
                400, "INVALID_NUMBER_ID", str(exc), {"fromNumber": body.from_number}
            ) from exc
    caller = pick_caller(context.numbers, wanted)
    if caller is not None:
        from_number, trunk_id = caller.number, caller.sip_trunk_id
    elif wanted is None and settings.default_sip_trunk_id:
        from_number, trunk_id = None, settings.default_sip_trunk_id
    else:
        message = (
            f"from_number {wanted} is not registered in this workspace"
            if wanted
            else "no caller id: register a number or set OUTDIAL_DEFAULT_SIP_TRUNK_ID"
        )
        raise ApiError(400, "INVALID_NUMBER_ID", message)
    # Again at every call: the operator may have withdrawn the trunk since it was registered.
    if not trunk_allowed(caller, trunk_id, context.assigned_trunks):
        raise ApiError(
            403,
            "TRUNK_NOT_ASSIGNED",
            f"trunk {trunk_id} is not assigned to this workspace (ask the operator to assign "
            "it, or register the number with a trunk spec)",
            {"sipTrunkId": trunk_id},
        )

    # When to dial: the asked time, moved to the window's next opening when it is closed.
    due = due_time(body, now_ms())
    requested = body.call_window.window() if body.call_window is not None else None
    window = chosen_window(requested, agent.call_window, workspace.call_window)
    if window is not None:
        ready_s = settings.agent_ready_timeout_seconds
        due = due_in_window(window, to, due, now_ms(), ready_s)
    # One read of the system's randomness for both (each costs a system call).
    entropy = os.urandom(22)
    call_id = entropy[:12].hex()
    room_name = f"{agent.id}-{entropy[12:].translate(_ROOM_SUFFIX_OF_BYTE).decode()}"
    draft = CallDraft(
        id=call_id,
        workspace_id=workspace.id,
        agent_id=agent.id,
        to=to,
        from_number=from_number,
        sip_trunk_id=trunk_id,
        room_name=room_name,
        callback_url=body.callback_url,
        dynamic_variables=body.dynamic_variables,
        metadata=body.metadata,
        campaign_id=body.campaign_id,
        max_duration_seconds=body.max_duration_seconds
        or agent.max_duration_seconds
        or settings.default_max_duration_seconds,
        ring_timeout_seconds=body.ring_timeout_seconds
        or agent.ring_timeout_seconds
        or settings.default_ring_timeout_seconds,
        agent=agent.config(),
        budgets=CallBudgets.from_settings(settings),
        idempotency_key=idempotency_key,
        call_window=window_to_json(window) if window is not None else None,
    )
    response = {
        "status": "success",
        "message": f"Outbound call job scheduled for agent {agent.id} to number {to}",
        "callId": call_id,
        "roomName": room_name,
    }
    if due is None:
        return accept_call_write(store, draft, response, fingerprint)
    response["message"] = f"Outbound call scheduled for agent {agent.id} to number {to}"
    return accept_scheduled_write(store, draft, response, fingerprint, due)


def accepted_answer(
    write: AcceptWrite, outcome: AcceptOutcome, fingerprint: str | None, workspace_id: str
) -> dict[str, Any]:
    """The answer to an accept its script ran for: the new call's, or the first answer of
    its idempotency key; DO_NOT_CALL (403) for a number on the workspace's do-not-call list,
    INSUFFICIENT_BALANCE (402) when the balance could not cover it."""
    if outcome.do_not_call:
        raise do_not_call(write)
    if outcome.balance_short is not None:
        raise insufficient_balance(outcome.balance_short)
    assert outcome.previous is not None
    if not outcome.created:
        return replay(outcome.previous, fingerprint)
    logger.info(
        "call accepted",
        extra={
            "call_id": write.call_id,
            "workspace_id": workspace_id,
            "room": write.response["roomName"],
        },
    )
    return cast(dict[str, Any], outcome.previous["response"])


def do_not_call(write: AcceptWrite) -> ApiError:
    """DO_NOT_CALL (403): the accept's script found the number on the do-not-call list."""
    to = write.to
    return ApiError(403, "DO_NOT_CALL", f"{to} is on the workspace's do-not-call list", {"to": to})


def insufficient_balance(balance_s: int) -> ApiError:
    """INSUFFICIENT_BALANCE (402): the workspace's minutes cannot cover a call's first one."""
    return ApiError(
        402,
        "INSUFFICIENT_BALANCE",
        f"the workspace has {balance_s} s of calls left; a call needs {RESERVE_SECONDS} s "
        "to start (ask the operator for credits)",
        {"balanceSeconds": balance_s, "requiredSeconds": RESERVE_SECONDS},
    )


def due_time(body: CallCreate | CallReschedule, now: int) -> Due | None:
    """When a call asked for later is due; None when it is due now (no time, or a past
    one: a scheduled call is never dialed early, a late one at once)."""
    if body.scheduled_at is not None:
        at_ms = int(body.scheduled_at.timestamp() * 1000)
    elif body.delay_seconds is not None:
        at_ms = now + body.delay_seconds * 1000
    else:
        return None
    return Due(at_ms, "scheduled_time") if at_ms > now else None
