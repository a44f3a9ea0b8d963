"""Call bodies: `POST /v1/api/call` in, call records and events out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.contract import Scalar

MAX_BODY_BYTES = 64 * 1024
MAX_SECTION_BYTES = 16 * 1024
MAX_VARIABLES = 64


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=64)
    call_agent_id: str = Field(min_length=1, max_length=64)
    callback_url: str | None = Field(None, min_length=1)
    dynamic_variables: dict[str, Scalar] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    from_number: str | None = Field(None, min_length=2, max_length=32)
    campaign_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    max_duration_seconds: int | None = Field(None, ge=10, le=14_400)
    ring_timeout_seconds: int | None = Field(None, ge=5, le=80)


class CallAccepted(BaseModel):
    status: str = "success"
    message: str
    callId: str
    roomName: str
    jobId: str
