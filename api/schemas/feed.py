"""The live event stream's items (`GET /v1/api/events/stream`): each `data:` line is one
event of a call, as `GET /v1/api/call/{call_id}/events` shows it (without its delivery
state, which moves on after it was sent) and with the call it belongs to."""

from __future__ import annotations

from typing import Any

from api.schemas.events import RecordedEvent


class StreamedEvent(RecordedEvent):
    """A recorded event with the call it belongs to."""

    call_id: str

    @classmethod
    def of(cls, call_id: str, event: dict[str, Any]) -> StreamedEvent:
        return cls.model_validate(event | {"callId": call_id})
