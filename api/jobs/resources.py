"""A Dramatiq worker process's resources: the holder its `WorkerResources` middleware owns.

Async actors share one event loop thread per process (the AsyncIO middleware); the
holder's clients bind to that loop, so they are made lazily inside it, and the middleware
closes them there at shutdown, after in-flight messages are done (api/resources.py).
`worker_livekit()` replays failed requests on LiveKit Cloud (idempotent requests only);
`worker_single_shot_livekit()` sends each request once: the dial (CreateSIPParticipant)
must go through it; `worker_room_admin_livekit()` is for a room's own requests, whose token
must name the room (see api/livekit.py).
"""

from __future__ import annotations

import logging

import aiohttp
import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from livekit import api as lkapi

from api.resources import Resources
from api.settings import Settings
from api.store.base import Store

logger = logging.getLogger("outdial.worker")


class WorkerResources(Middleware):
    """Owns the process's `Resources`; closes them once in-flight messages are done, while
    the event loop still runs: install it after the AsyncIO middleware, which stops the loop
    in its own `after_worker_shutdown` (Dramatiq calls those hooks last-added first)."""

    def __init__(self, settings: Settings) -> None:
        self.resources = Resources(settings)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            try:
                loop_thread.run_coroutine(self.resources.aclose())
            except Exception:  # shutting down anyway; a failed close only leaks sockets
                logger.exception("closing worker resources failed")


def worker_resources() -> Resources:
    """The resources of the running worker: those its broker's middleware holds."""
    for middleware in dramatiq.get_broker().middleware:
        if isinstance(middleware, WorkerResources):
            return middleware.resources
    raise RuntimeError("the broker has no WorkerResources middleware (see api/jobs/broker.py)")


def worker_settings() -> Settings:
    """The settings the worker's broker was built with (`build_broker`), held with its
    resources: one source of settings per worker process."""
    return worker_resources().settings


def worker_store() -> Store:
    return worker_resources().store


def worker_livekit() -> lkapi.LiveKitAPI:
    """For idempotent requests outside one room's scope: CreateRoom, DeleteRoom."""
    return worker_resources().livekit


def worker_room_admin_livekit() -> lkapi.LiveKitAPI:
    """For a room's own requests: ListParticipants."""
    return worker_resources().room_admin_livekit


def worker_single_shot_livekit() -> lkapi.LiveKitAPI:
    """For requests that must reach LiveKit at most once: CreateSIPParticipant."""
    return worker_resources().single_shot_livekit


def worker_callback_session() -> aiohttp.ClientSession:
    """The session callbacks are sent through."""
    return worker_resources().callback_session
