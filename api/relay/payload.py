"""The request a callback receiver gets: JSON body composed from the stored event and the
call, plus headers that name the event and sign the exact body bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from api.security import SIGNATURE_HEADER, sign_payload


def _outdial_version() -> str:
    try:
        return version("outdial")
    except PackageNotFoundError:  # running from a checkout
        return "0.1.0"


USER_AGENT = f"Outdial/{_outdial_version()}"


@dataclass(frozen=True, slots=True)
class CallTarget:
    """What every event of one call is delivered with."""

    call_id: str
    workspace_id: str
    room_name: str
    callback_url: str
    metadata_json: str  # the client's metadata exactly as stored
    webhook_secret: str
    # The operator disabled the workspace: its events are given up, never sent.
    workspace_disabled: bool = False


def event_body(event: dict[str, Any], target: CallTarget) -> bytes:
    payload = {
        "id": event["id"],
        "type": event["type"],
        "sequence": event["sequence"],
        "timestamp": event["timestamp"],
        "callId": target.call_id,
        "workspaceId": target.workspace_id,
        "roomName": target.room_name,
        "status": event["status"],
        "data": event.get("data", {}),
        "metadata": json.loads(target.metadata_json or "{}"),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def event_headers(event: dict[str, Any], body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Outdial-Event": event["type"],
        "X-Outdial-Event-Id": event["id"],
        SIGNATURE_HEADER: sign_payload(body, secret),
    }
