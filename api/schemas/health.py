"""Probe bodies."""

from __future__ import annotations

from typing import Literal

from api.schemas.base import ResponseModel


class Liveness(ResponseModel):
    status: Literal["ok"]


class ReadinessChecks(ResponseModel):
    """Each check: `ok` or a short state; its details only for a token holder."""

    redis: str
    livekit: str
    # `missing: ...` once calls were settled without LiveKit's webhooks (informational)
    livekit_webhooks: str


class Readiness(ResponseModel):
    status: Literal["ready", "degraded", "not_ready"]
    checks: ReadinessChecks
