"""The answer to a LiveKit webhook."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class WebhookApplied(BaseModel):
    status: Literal["success"]
    outcome: Literal["applied", "duplicate", "ignored"]
    callId: str | None
    applied: list[str]
