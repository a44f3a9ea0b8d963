"""The store's clock: Unix milliseconds, the unit of every time a record holds and of every
score in a schedule (deadlines, relay retries, in-flight leases)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
