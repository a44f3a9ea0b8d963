"""The live event stream's items (`GET /v1/api/events/stream`): each `data:` line is one
event of a call, as `GET /v1/api/call/{call_id}/events` shows it (without its delivery
state, which moves on after it was sent) and with the call it belongs to."""

from __future__ import annotations

from typing import Any

from api.schemas.base import ResponseModel, Timestamp


class StreamedEvent(ResponseModel):
    """`data` is the event's own payload, as its source reported it (docs/callbacks.md)."""

    call_id: str
    id: str
    type: str
    sequence: int
    status: str
    timestamp: Timestamp
    data: dict[str, Any]

    @classmethod
    def of(cls, call_id: str, event: dict[str, Any]) -> StreamedEvent:
        return cls.model_validate(event | {"callId": call_id})
