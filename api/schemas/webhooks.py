"""The answer to a LiveKit webhook."""

from __future__ import annotations

from typing import Literal

from api.schemas.base import ResponseModel


class WebhookApplied(ResponseModel):
    status: Literal["success"]
    outcome: Literal["applied", "duplicate", "ignored"]
    call_id: str | None
    applied: list[str]
