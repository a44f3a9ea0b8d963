"""Schedules: due work waiting in Redis sorted sets, claimed into Dramatiq queues.

Two schedules: relay retries (`relay:due`, a call whose callbacks are due again) and call
deadlines (`deadlines`, a call whose state must be checked against LiveKit). Invariant: a
claim is one atomic script (`lua.CLAIM_DUE`) that moves due members into the queue, so
several processes may claim at once and each due member goes to exactly one of them; a
claimed deadline stays in its schedule one lease later, so it comes back if the job that
handles it dies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis

from api.settings import Settings
from api.store import lua
from api.store.keys import Keys
from api.store.messages import (
    RECONCILE_ACTOR,
    RECONCILE_QUEUE,
    RELAY_ACTOR,
    RELAY_QUEUE,
    QueueKeys,
    message_template,
)


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    key: str
    queue: QueueKeys
    message_template: str
    interval_seconds: float
    # 0: a claimed member leaves the schedule; else it is due again this much later.
    lease_ms: int = 0

    @classmethod
    def relay_retries(cls, settings: Settings) -> Schedule:
        return cls(
            name="relay-due",
            key=Keys(settings.redis_prefix).relay_due(),
            queue=QueueKeys.of(settings.broker_namespace, RELAY_QUEUE),
            message_template=message_template(RELAY_QUEUE, RELAY_ACTOR),
            interval_seconds=0.15,
        )

    @classmethod
    def call_deadlines(cls, settings: Settings) -> Schedule:
        return cls(
            name="call-deadlines",
            key=Keys(settings.redis_prefix).deadlines(),
            queue=QueueKeys.of(settings.broker_namespace, RECONCILE_QUEUE),
            message_template=message_template(RECONCILE_QUEUE, RECONCILE_ACTOR, with_claim=True),
            interval_seconds=settings.reconcile_interval_seconds,
            lease_ms=settings.reconcile_lease_seconds * 1000,
        )


class DueClaims:
    """Claims of one schedule over a blocking Redis client of their own: they run on a
    claiming thread, away from any event loop. Failures raise `redis.RedisError`."""

    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        self.schedule = schedule
        self._client = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        self._script = self._client.register_script(lua.CLAIM_DUE)
        self._keys = [schedule.key, schedule.queue.messages, schedule.queue.ids]

    def claim(self, limit: int) -> int:
        """Queue up to `limit` due members; how many were queued."""
        # A fresh id prefix per claim keeps message ids unique across processes.
        prefix = f"{self.schedule.name}-{uuid.uuid4().hex[:12]}-"
        now_ms = int(time.time() * 1000)
        template, lease_ms = self.schedule.message_template, self.schedule.lease_ms
        args: list[str | int] = [now_ms, limit, template, prefix, lease_ms]
        return int(self._script(keys=self._keys, args=args))

    def close(self) -> None:
        self._client.close()
