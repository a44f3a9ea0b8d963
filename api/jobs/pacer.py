"""The pacer: admits waiting calls as their trunks' limits free, in every worker process.

A call its limits held back at the start of its dispatch waits in its trunk's waiting sets
(`api.store.pacing`). One thread per worker process steps every trunk with waiting calls:
each step is one script that admits as many as the limits allow, round-robin across
workspaces, and writes each admitted call's dispatch message with it. Between steps the
thread blocks on the wake-up list until the nearest rate opening (a trunk's score in
`pacing:trunks`): a released slot pushes a wake-up, so a freed slot is used at once
without polling. Several processes may step at once; each step is atomic.
"""

from __future__ import annotations

import time

import dramatiq
from dramatiq.middleware import Middleware

from api.jobs.loops import BackgroundLoop
from api.settings import Settings
from api.store.pacing import PacerSteps

# The longest sleep without a wake-up: a lease that expires frees a slot silently.
MAX_SLEEP_SECONDS = 1.0
# Openings nearer than this are slept to on the thread's own clock, not in a BLPOP.
PRECISE_SLEEP_SECONDS = 0.25


class Pacer(BackgroundLoop):
    """The pacing loop of one process, with its own Redis client."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("pacer")
        self._steps = PacerSteps(settings)
        self._woken = True

    def step(self) -> float:
        _, next_look = self._steps.step(everything=self._woken)
        self._woken = False
        if next_look is None:
            return MAX_SLEEP_SECONDS
        return min(MAX_SLEEP_SECONDS, max(0.0, next_look - time.time()))

    def pause(self, seconds: float) -> None:
        if seconds > PRECISE_SLEEP_SECONDS:
            self._woken = self._steps.wait_for_wake(seconds)
        else:
            # A rate opening close by: Redis may time a BLPOP out up to 1/hz late (100 ms
            # by default) on a quiet server, more than a turn; a freed slot waits this long.
            super().pause(seconds)

    def close(self) -> None:
        self._steps.close()


class Pacing(Middleware):
    """Starts the process's pacer with the worker, stops it at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pacer: Pacer | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._pacer = Pacer(self._settings)
        self._pacer.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._pacer is not None:
            self._pacer.stop()
            self._pacer = None
