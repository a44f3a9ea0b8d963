"""Events from agent workers, authenticated by the per-call token in the dispatch contract.

When an agent's end event ends the call, the API deletes the call's room too (idempotent):
the agent does so itself, but a DeleteRoom it could not send, or a dial that landed after
it gave up, would otherwise leave a callee on a line nobody watches (a terminal call is
never looked at again).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header
from livekit import api as lkapi

from agent_runtime.contract import AgentEvent
from api.deps import SettingsDep, StoreDep, bearer_token
from api.errors import ApiError, not_found, unauthorized
from api.livekit import livekit_client
from api.security import event_token_matches
from api.settings import Settings
from api.store.calls import get_call
from api.store.events import EventSpec, apply_event, mark_agent_ready
from sip import delete_room

logger = logging.getLogger("outdial.api")

router = APIRouter(prefix="/v1/internal", tags=["internal"])


def _call_fields(event: AgentEvent) -> dict[str, str]:
    """What an agent event records on the call itself."""
    data = event.data
    picked: dict[str, Any] = {}
    if event.type in ("call.ended", "call.failed"):
        picked = {
            "end_reason": data.get("reason") or ("error" if event.type == "call.failed" else None),
            "duration_seconds": data.get("duration_seconds"),
            "sip_status_code": data.get("sip_status_code"),
            "sip_status": data.get("sip_status"),
        }
    if event.type == "call.failed":
        picked["error_code"] = data.get("code") or str(picked["end_reason"]).upper()
        picked["error_message"] = data.get("message")
    return {name: str(value)[:500] for name, value in picked.items() if value is not None}


async def _drop_room(settings: Settings, room_name: str, call_id: str) -> None:
    try:
        await delete_room(livekit_client(settings), room_name)
    except (lkapi.ServerError, OSError, TimeoutError) as exc:
        logger.warning("could not delete room %s: %s", room_name, exc, extra={"call_id": call_id})


@router.post("/calls/{call_id}/events")
async def agent_event(
    call_id: str,
    event: AgentEvent,
    store: StoreDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    token = bearer_token(authorization)
    if token is None or not event_token_matches(call_id, token, settings.event_signing_key):
        raise unauthorized("event token missing or not valid for this call")
    spec = EventSpec(
        type=event.type,
        data=event.data,
        id=event.id,
        timestamp=event.timestamp,
        call_fields=_call_fields(event),
    )
    apply = mark_agent_ready if event.type == "agent.ready" else apply_event
    try:
        result = await apply(store, call_id, spec)
    except ValueError as exc:
        raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
    if result.outcome == "missing":
        raise not_found("call", call_id)
    if result.applied and event.type in ("call.ended", "call.failed"):
        call = await get_call(store, call_id)
        if call is not None:
            background.add_task(_drop_room, settings, call.room_name, call_id)
    return {
        "status": "success",
        "applied": result.applied,
        "outcome": result.outcome,
        "sequence": result.sequence or None,
        "callStatus": result.status,
    }
