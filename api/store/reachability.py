"""Can this process reach Redis? Asked once, when `outdial api`, `worker` or `dev` starts.

Invariant: one PING on a connection of its own (through the sentinels, when they are set:
`api.store.connect`), closed before returning; it never reads or writes a key, and never
runs on a request's path.
"""

from __future__ import annotations

import redis

from api.settings import Settings
from api.store.connect import sync_client


def redis_unreachable(settings: Settings, timeout: float = 3.0) -> str | None:
    """Why the Redis primary does not answer a PING, or None when it does."""
    try:
        client = sync_client(settings, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
        return str(exc)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None
