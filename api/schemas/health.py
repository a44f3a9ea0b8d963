"""Probe bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """`checks`: `ok` or a short state per check; details only for a token holder."""

    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, str]
