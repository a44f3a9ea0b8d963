"""Per-process resources of a Dramatiq worker: one Redis store and two LiveKit clients.

Async actors share one event loop thread per process (the AsyncIO middleware); the
clients bind to that loop, so they are created lazily inside it and closed at shutdown.
`worker_livekit()` replays failed requests on LiveKit Cloud (idempotent requests only);
`worker_single_shot_livekit()` sends each request once: the dial (CreateSIPParticipant)
must go through it (see api/livekit.py).
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from livekit import api as lkapi

from api.livekit import close_livekit_client, livekit_client, single_shot_livekit_client
from api.settings import Settings, get_settings
from api.store.base import Store, open_store

logger = logging.getLogger("outdial.worker")

_store: Store | None = None


def worker_settings() -> Settings:
    return get_settings()


def worker_store() -> Store:
    global _store
    if _store is None:
        _store = open_store(worker_settings())
    return _store


def worker_livekit() -> lkapi.LiveKitAPI:
    """For idempotent requests: CreateRoom, DeleteRoom, ListParticipants."""
    return livekit_client(worker_settings())


def worker_single_shot_livekit() -> lkapi.LiveKitAPI:
    """For requests that must reach LiveKit at most once: CreateSIPParticipant."""
    return single_shot_livekit_client(worker_settings())


async def close_worker_resources() -> None:
    global _store
    await close_livekit_client()
    if _store is not None:
        await _store.aclose()
        _store = None


class WorkerResources(Middleware):
    """Closes the per-process clients once in-flight messages are done, while the event loop
    still runs (install it before the AsyncIO middleware, which stops the loop)."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            try:
                loop_thread.run_coroutine(close_worker_resources())
            except Exception:  # shutting down anyway; a failed close only leaks sockets
                logger.exception("closing worker resources failed")
