"""The delivery state of one event, and how an attempt moves it."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace
from typing import Literal

from api.relay.policy import AttemptResult, retry_delay, window_exhausted

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryState:
    state: DeliveryStatus = "pending"
    attempts: int = 0
    first_attempt_ms: int | None = None
    last_attempt_ms: int | None = None
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_ms: int | None = None

    @property
    def final(self) -> bool:
        return self.state != "pending"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> DeliveryState:
        return cls(**json.loads(raw)) if raw else cls()


def after_attempt(
    previous: DeliveryState,
    result: AttemptResult,
    now_ms: int,
    schedule: list[float],
    window_seconds: float,
    rng: random.Random | None = None,
) -> DeliveryState:
    attempts = previous.attempts + 1
    first = previous.first_attempt_ms or now_ms
    state = replace(
        previous,
        attempts=attempts,
        first_attempt_ms=first,
        last_attempt_ms=now_ms,
        last_status=result.status,
        last_error=result.error,
        next_attempt_ms=None,
    )
    if result.outcome == "delivered":
        return replace(state, state="delivered")
    if result.outcome == "failed" or window_exhausted(first, now_ms, window_seconds):
        return replace(state, state="failed")
    delay = retry_delay(attempts, schedule, result.retry_after, rng)
    return replace(state, next_attempt_ms=now_ms + int(delay * 1000))
