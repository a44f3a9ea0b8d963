"""Schedules: due work waiting in Redis sorted sets, claimed into Dramatiq queues.

Three schedules: relay retries (`relay:due`, a call whose callbacks are due again), call
deadlines (`deadlines`, a call whose state must be checked against LiveKit) and scheduled
calls (`scheduled:due`, a call placed for later: its own script, claim_scheduled.lua,
also moves the call to `queued`). Invariant: a claim is one atomic script (claim_due.lua)
that moves due members into the queue, so
several processes may claim at once and each due member goes to exactly one of them; a
claimed deadline stays in its schedule one lease later, so it comes back if the job that
handles it dies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis.commands.core import Script

from api.settings import Settings
from api.store.connect import sync_client
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
from api.store.scheduled_calls import ClaimScheduled, ScheduledCallKeys
from api.store.scripts import SCRIPTS, Key, ScriptCall

# A scheduled call is queued at most this long after its due time (plus the claim itself).
SCHEDULED_CALLS_INTERVAL_SECONDS = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimDue(ScriptCall):
    NAME = "claim_due"
    schedule: Key
    queue_msgs: Key
    queue: Key
    now_ms: int
    limit: int
    body_template: str  # @@CALL@@, @@MSG@@, @@CLAIM@@
    msg_id_prefix: str
    lease_ms: int  # 0: a claimed member leaves the schedule


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    key: str
    queue: QueueKeys
    message_template: str
    interval_seconds: float
    # 0: a claimed member leaves the schedule; else it is due again this much later.
    lease_ms: int = 0
    # Scheduled calls: the claim also moves each call to `queued` (claim_scheduled.lua).
    calls: ScheduledCallKeys | None = None

    def claim_call(self, now_ms: int, limit: int, msg_id_prefix: str) -> ClaimDue | ClaimScheduled:
        """The claim script's call for the members due at `now_ms`."""
        if self.calls is None:
            return ClaimDue(
                schedule=self.key,
                queue_msgs=self.queue.messages,
                queue=self.queue.ids,
                now_ms=now_ms,
                limit=limit,
                body_template=self.message_template,
                msg_id_prefix=msg_id_prefix,
                lease_ms=self.lease_ms,
            )
        calls = self.calls
        return ClaimScheduled(
            due=self.key,
            dial_msgs=self.queue.messages,
            dial_queue=self.queue.ids,
            deadlines=calls.deadlines,
            relay_msgs=calls.relay_msgs,
            relay_queue=calls.relay_queue,
            now_ms=now_ms,
            limit=limit,
            body_template=self.message_template,
            msg_id_prefix=msg_id_prefix,
            timestamp=iso_timestamp(now_ms / 1000),
            retention_s=calls.retention_s,
            relay_template=calls.relay_template,
            call_template=calls.call_template,
            events_template=calls.events_template,
            eids_template=calls.eids_template,
            delivery_template=calls.delivery_template,
            relay_active_template=calls.relay_active_template,
        )

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
            calls=ScheduledCallKeys.of(keys, relay, settings.call_retention_days * 86_400),
        )


class DueClaims:
    """Claims of one schedule over a blocking Redis client of their own: they run on a
    claiming thread, away from any event loop. Failures raise `redis.RedisError`."""

    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        self.schedule = schedule
        self._client = sync_client(
            settings, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        # By the name of the call the schedule makes (`Schedule.claim_call`), registered once.
        self._scripts: dict[str, Script] = {}

    def claim(self, limit: int) -> int:
        """Queue up to `limit` due members; how many were queued."""
        # A fresh id prefix per claim keeps message ids unique across processes.
        prefix = f"{self.schedule.name}-{uuid.uuid4().hex[:12]}-"
        call = self.schedule.claim_call(int(time.time() * 1000), limit, prefix)
        if call.NAME not in self._scripts:
            self._scripts[call.NAME] = self._client.register_script(SCRIPTS[call.NAME])
        return int(self._scripts[call.NAME](keys=call.keys(), args=call.args()))

    def close(self) -> None:
        self._client.close()
