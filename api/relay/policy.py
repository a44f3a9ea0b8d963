"""What one HTTP answer means for a callback, and when to try again.

Only answers that can change by themselves are retried (timeouts, 408, 429, 5xx, network
errors); every other answer is the receiver's configuration and fails at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

AttemptOutcome = Literal["delivered", "retry", "failed"]

# Spreads retries of many events that failed together (one receiver down for everyone).
JITTER_FRACTION = 0.2
# A receiver may ask for a later retry with Retry-After, up to this.
MAX_RETRY_AFTER_SECONDS = 3600.0
_RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: AttemptOutcome
    status: int | None = None  # the HTTP status, None when no answer came
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


def outcome_for_status(status: int) -> AttemptOutcome:
    if 200 <= status < 300:
        return "delivered"
    if status in _RETRYABLE_4XX or status >= 500:
        return "retry"
    return "failed"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from `now` a Retry-After header asks for (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return min(max(moment.timestamp() - now, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(
    attempts: int,
    schedule: list[float],
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1-based).

    The schedule's last entry repeats; a Retry-After longer than the schedule wins.
    """
    base = schedule[min(attempts, len(schedule)) - 1] if schedule else 1.0
    spread = (rng or random).uniform(1 - JITTER_FRACTION, 1 + JITTER_FRACTION)
    delay = base * spread
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def window_exhausted(first_attempt_ms: int, now_ms: int, window_seconds: float) -> bool:
    """True once retrying has gone on for the whole retry window."""
    return now_ms - first_attempt_ms >= window_seconds * 1000
