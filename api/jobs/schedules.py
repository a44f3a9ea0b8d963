"""Moves due work out of Redis schedules into Dramatiq queues, in every worker process.

Two schedules: relay retries (`relay:due`, a call whose callbacks are due again) and call
deadlines (`deadlines`, a call whose state must be checked against LiveKit). Both wait in
sorted sets rather than as Dramatiq delayed messages (which a worker would pin in memory
for hours, see DRAMATIQ.md). A small thread per schedule and process moves due members
into the queue with one atomic script; several processes may run it at once, the script
hands each due member to exactly one of them. A claimed deadline stays in its schedule one
lease later, so it comes back if the job that handles it dies.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import dramatiq
import redis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from api.jobs.messages import (
    RECONCILE_ACTOR,
    RECONCILE_QUEUE,
    RELAY_ACTOR,
    RELAY_QUEUE,
    QueueKeys,
    message_template,
)
from api.relay.http import close_delivery_session
from api.settings import Settings
from api.store import lua
from api.store.keys import Keys

logger = logging.getLogger("outdial.schedules")

CLAIM_BATCH = 500
_ERROR_PAUSE_SECONDS = 1.0


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


class DueClaimer:
    """The claiming loop of one schedule: a thread with its own (blocking) Redis client."""

    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        self.schedule = schedule
        self._client = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        self._script = self._client.register_script(lua.CLAIM_DUE)
        self._keys = [schedule.key, schedule.queue.messages, schedule.queue.ids]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=schedule.name, daemon=True)

    def claim_once(self) -> int:
        # A fresh id prefix per claim keeps message ids unique across processes.
        prefix = f"{self.schedule.name}-{uuid.uuid4().hex[:12]}-"
        now_ms = int(time.time() * 1000)
        args = [now_ms, CLAIM_BATCH, self.schedule.message_template, prefix]
        return int(self._script(keys=self._keys, args=[*args, self.schedule.lease_ms]))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.claim_once()
            except redis.RedisError as exc:
                logger.warning("claiming due %s failed: %s", self.schedule.name, exc)
                self._stop.wait(_ERROR_PAUSE_SECONDS)
                continue
            except Exception:  # never let the thread die silently: nothing else claims here
                logger.exception("claiming due %s failed", self.schedule.name)
                self._stop.wait(_ERROR_PAUSE_SECONDS)
                continue
            if claimed < CLAIM_BATCH:  # a full batch means more are due right now
                self._stop.wait(self.schedule.interval_seconds)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._client.close()


class ScheduledWork(Middleware):
    """Starts each schedule's claimer with the worker; closes the delivery session at
    shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._schedules = (Schedule.relay_retries(settings), Schedule.call_deadlines(settings))
        self._settings = settings
        self._claimers: list[DueClaimer] = []

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._claimers = [DueClaimer(self._settings, schedule) for schedule in self._schedules]
        for claimer in self._claimers:
            claimer.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        for claimer in self._claimers:
            claimer.stop()
        self._claimers = []
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            try:
                loop_thread.run_coroutine(close_delivery_session())
            except Exception:  # shutting down anyway; a failed close only leaks sockets
                logger.exception("closing the callback session failed")
