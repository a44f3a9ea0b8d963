"""Events from agent workers, authenticated by the per-call token in the dispatch contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from agent_runtime.contract import AgentEvent
from api.deps import SettingsDep, StoreDep, bearer_token
from api.errors import ApiError, not_found, unauthorized
from api.security import event_token_matches
from api.store.events import EventSpec, apply_event, mark_agent_ready

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


@router.post("/calls/{call_id}/events")
async def agent_event(
    call_id: str,
    event: AgentEvent,
    store: StoreDep,
    settings: SettingsDep,
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
    return {
        "status": "success",
        "applied": result.applied,
        "outcome": result.outcome,
        "sequence": result.sequence or None,
        "callStatus": result.status,
    }
