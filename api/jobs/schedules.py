"""Moves due work out of Redis schedules into Dramatiq queues, in every worker process.

Relay retries and call deadlines wait in sorted sets (`api.store.schedules`) rather than
as Dramatiq delayed messages (which a worker would pin in memory for hours, see
DRAMATIQ.md). A small thread per schedule and process claims due members into the queue;
several processes may claim at once, each claim is one atomic step in the store.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
import redis
from dramatiq.middleware import Middleware

from api.settings import Settings
from api.store.schedules import DueClaims, Schedule

logger = logging.getLogger("outdial.schedules")

CLAIM_BATCH = 500
_ERROR_PAUSE_SECONDS = 1.0


class DueClaimer:
    """The claiming loop of one schedule: a thread with its own claims (and Redis client)."""

    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        self.schedule = schedule
        self._claims = DueClaims(settings, schedule)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=schedule.name, daemon=True)

    def claim_once(self) -> int:
        return self._claims.claim(CLAIM_BATCH)

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
        self._claims.close()


class ScheduledWork(Middleware):
    """Starts each schedule's claimer with the worker, stops it at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._schedules = (
            Schedule.relay_retries(settings),
            Schedule.call_deadlines(settings),
            Schedule.scheduled_calls(settings),
        )
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
