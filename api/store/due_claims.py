"""Schedules: due work waiting in Redis sorted sets, claimed into Dramatiq queues.

Three schedules: relay retries (`relay:due`, a call whose callbacks are due again), call
deadlines (`deadlines`, a call whose state must be checked against LiveKit) and scheduled
calls (`scheduled:due`, a call placed for later: its own script,
`lua_schedule.CLAIM_SCHEDULED`, also moves the call to `queued`). Invariant: a
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
from api.store import lua, lua_schedule
from api.store.events import iso_timestamp
from api.store.keys import Keys
from api.store.messages import (
    DIAL_QUEUE,
    DISPATCH_ACTOR,
    RECONCILE_ACTOR,
    RECONCILE_QUEUE,
    RELAY_ACTOR,
    RELAY_QUEUE,
    QueueKeys,
    message_template,
)
from api.store.scheduled_calls import claim_arguments

# A scheduled call is queued at most this long after its due time (plus the claim itself).
SCHEDULED_CALLS_INTERVAL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    key: str
    queue: QueueKeys
    message_template: str
    interval_seconds: float
    # 0: a claimed member leaves the schedule; else it is due again this much later.
    lease_ms: int = 0
    # The claim script: ARGV now_ms, limit, template, id prefix, lease_ms, the claim's
    # ISO time, then `extra_args`.
    script: str = lua.CLAIM_DUE
    extra_args: tuple[str | int, ...] = ()
    extra_keys: tuple[str, ...] = ()

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

    @classmethod
    def scheduled_calls(cls, settings: Settings) -> Schedule:
        keys = Keys(settings.redis_prefix)
        relay = QueueKeys.of(settings.broker_namespace, RELAY_QUEUE)
        return cls(
            name="scheduled-calls",
            key=keys.scheduled_due(),
            queue=QueueKeys.of(settings.broker_namespace, DIAL_QUEUE),
            message_template=message_template(DIAL_QUEUE, DISPATCH_ACTOR),
            # how late past its time a scheduled call is queued, at most (plus the claim)
            interval_seconds=SCHEDULED_CALLS_INTERVAL_SECONDS,
            script=lua_schedule.CLAIM_SCHEDULED,
            extra_args=(settings.call_retention_days * 86_400, *claim_arguments(keys)),
            extra_keys=(keys.deadlines(), relay.messages, relay.ids),
        )


class DueClaims:
    """Claims of one schedule over a blocking Redis client of their own: they run on a
    claiming thread, away from any event loop. Failures raise `redis.RedisError`."""

    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        self.schedule = schedule
        self._client = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        self._script = self._client.register_script(schedule.script)
        queue = schedule.queue
        self._keys = [schedule.key, queue.messages, queue.ids, *schedule.extra_keys]

    def claim(self, limit: int) -> int:
        """Queue up to `limit` due members; how many were queued."""
        # A fresh id prefix per claim keeps message ids unique across processes.
        prefix = f"{self.schedule.name}-{uuid.uuid4().hex[:12]}-"
        now_ms = int(time.time() * 1000)
        template, lease_ms = self.schedule.message_template, self.schedule.lease_ms
        at = iso_timestamp(now_ms / 1000)
        args = [now_ms, limit, template, prefix, lease_ms, at, *self.schedule.extra_args]
        return int(self._script(keys=self._keys, args=args))

    def close(self) -> None:
        self._client.close()
