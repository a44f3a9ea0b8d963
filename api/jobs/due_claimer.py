"""Moves due work out of Redis schedules into Dramatiq queues, in every worker process.

Relay retries and call deadlines wait in sorted sets (`api.store.due_claims`) rather than
as Dramatiq delayed messages (which a worker would pin in memory for hours, see
DRAMATIQ.md). A small thread per schedule and process claims due members into the queue;
several processes may claim at once, each claim is one atomic step in the store.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware

from api.jobs.loops import BackgroundLoop
from api.settings import Settings
from api.store.due_claims import DueClaims, Schedule

CLAIM_BATCH = 500


class DueClaimer(BackgroundLoop):
    """The claiming loop of one schedule, with its own claims (and Redis client)."""

    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        super().__init__(schedule.name)
        self.schedule = schedule
        self._claims = DueClaims(settings, schedule)

    def claim_once(self) -> int:
        return self._claims.claim(CLAIM_BATCH)

    def step(self) -> float:
        # A full batch means more are due right now.
        return 0 if self.claim_once() == CLAIM_BATCH else self.schedule.interval_seconds

    def close(self) -> None:
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
