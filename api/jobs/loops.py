"""A worker process's background loops (schedule claimers, the pacer): one thread each.

Invariant: a loop's thread never dies while its worker runs: a Redis failure is logged as
a warning, anything else with its traceback, and the step runs again after a pause, since
nothing else in the process does its work. Stopping wakes the loop and closes what its
steps hold once the thread has left.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

import redis

logger = logging.getLogger("outdial.loops")

_ERROR_PAUSE_SECONDS = 1.0


class BackgroundLoop(ABC):
    """Runs `step` on a thread of its own, then `pause` for what it returned, until
    stopped. Subclasses give `step` and `close`, and `pause` when a plain timed wait is not
    enough."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abstractmethod
    def step(self) -> float:
        """One round of work; the seconds to wait before the next (0: at once)."""

    def pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    @abstractmethod
    def close(self) -> None:
        """Release what the steps hold (the thread has left)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.step()
            except Exception as exc:
                self._failed("step", exc)
                wait = _ERROR_PAUSE_SECONDS
            if wait <= 0 or self._stop.is_set():
                continue
            try:
                self.pause(wait)
            except Exception as exc:
                # A pause may read Redis too (the pacer's wake-up BLPOP): wait it out plainly.
                self._failed("pause", exc)
                self._stop.wait(_ERROR_PAUSE_SECONDS)

    def _failed(self, what: str, exc: Exception) -> None:
        """Log a failed step or pause (called in its `except` block, for the traceback)."""
        if isinstance(exc, redis.RedisError):
            logger.warning("%s: %s failed: %s", self.name, what, exc)
        else:
            logger.exception("%s: %s failed", self.name, what)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # A pause returns within its longest wait (a blocked read at most a second).
            self._thread.join(timeout=5)
        self.close()
