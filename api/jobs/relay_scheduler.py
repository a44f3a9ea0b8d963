"""Runs parked relay retries when they are due, in every worker process.

Retries wait in the `relay:due` sorted set rather than as Dramatiq delayed messages (which
a worker would pin in memory for hours, see DRAMATIQ.md). A small thread per process moves
due calls into the relay queue with one atomic script; several processes may run it at
once, the script hands each due call to exactly one of them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import dramatiq
import redis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from api.jobs.messages import RELAY_QUEUE, QueueKeys, relay_message_template
from api.relay.http import close_delivery_session
from api.settings import Settings
from api.store import lua
from api.store.keys import Keys

logger = logging.getLogger("outdial.relay")

CLAIM_INTERVAL_SECONDS = 0.15
CLAIM_BATCH = 500
_ERROR_PAUSE_SECONDS = 1.0


class DueRelayClaimer:
    """The claiming loop: a thread with its own (blocking) Redis client."""

    def __init__(self, settings: Settings) -> None:
        self._client = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        self._script = self._client.register_script(lua.CLAIM_DUE_RELAYS)
        queue = QueueKeys.of(settings.broker_namespace, RELAY_QUEUE)
        self._keys = [Keys(settings.redis_prefix).relay_due(), queue.messages, queue.ids]
        self._template = relay_message_template()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-due-claimer", daemon=True)

    def claim_once(self) -> int:
        # A fresh id prefix per claim keeps message ids unique across processes.
        prefix = f"relay-{uuid.uuid4().hex[:12]}-"
        now_ms = int(time.time() * 1000)
        return int(
            self._script(keys=self._keys, args=[now_ms, CLAIM_BATCH, self._template, prefix])
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.claim_once()
            except redis.RedisError as exc:
                logger.warning("claiming due relays failed: %s", exc)
                self._stop.wait(_ERROR_PAUSE_SECONDS)
                continue
            if claimed < CLAIM_BATCH:  # a full batch means more are due right now
                self._stop.wait(CLAIM_INTERVAL_SECONDS)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._client.close()


class RelayScheduler(Middleware):
    """Starts the claimer with each worker; closes the delivery session at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._claimer: DueRelayClaimer | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._claimer = DueRelayClaimer(self._settings)
        self._claimer.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._claimer is not None:
            self._claimer.stop()
            self._claimer = None
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            try:
                loop_thread.run_coroutine(close_delivery_session())
            except Exception:  # shutting down anyway; a failed close only leaks sockets
                logger.exception("closing the callback session failed")
