"""Every Redis connection of Outdial is made here: redis-py's (blocking and asyncio) and the
lean client's (`api.store.lean_redis`). No other module names an address.

Invariant: with `REDIS_SENTINELS` and `REDIS_SENTINEL_SERVICE` set, a client connects only
to the address a sentinel named as the service's primary when that connection was opened,
and asks again for every new connection; a connection that finds its server demoted
(READONLY, or UNBLOCKED for a blocked read) is dropped rather than reused. redis-py's
`Sentinel.master_for` pools do this for redis-py (redis/sentinel.py: the address is
discovered in `connect`, a demoted primary's connection is disconnected, a released
connection to an old primary is not pooled again); `SentinelLocator` does it for the lean
client. Without sentinels every client goes to `REDIS_URL` (redis://, rediss:// for TLS, or
unix://), with the same user, password, db and TLS options for all of them.
"""

from __future__ import annotations

import ssl
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.connection
import redis.sentinel

from api.settings import Settings
from api.store.lean_redis import Command, Endpoint, LeanRedis

# One sentinel's answer may take this long (per sentinel asked): a sentinel that is down is
# skipped after it, and the next one asked.
SENTINEL_TIMEOUT_SECONDS = 1.0
# How long a write waits for its replicas (OUTDIAL_REDIS_WAIT_REPLICAS) before it fails.
REPLICA_WAIT_TIMEOUT_MS = 1000
# The sentinels' answers come back in RESP2 like every other client's (api/store/base.py).
_PROTOCOL = 2


class SyncSentinelRedis(redis.Redis):
    """A blocking client of the primary the sentinels name; closing it closes its sentinels'
    connections too."""

    sentinels: redis.sentinel.Sentinel

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.sentinels.close()


class AsyncSentinelRedis(redis.asyncio.Redis):
    """An asyncio client of the primary the sentinels name; `aclose` closes its sentinels'
    connections too."""

    sentinels: redis.asyncio.sentinel.Sentinel

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            await self.sentinels.aclose()


def sync_client(settings: Settings, **options: Any) -> redis.Redis:
    """A blocking redis-py client of the primary; `options` as for `redis.Redis`."""
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **options)
    sentinel = redis.sentinel.Sentinel(
        settings.redis_sentinels, sentinel_kwargs=_sentinel_options(settings)
    )
    url_options = _primary_options(_url_options(settings, asyncio=False))
    client: SyncSentinelRedis = sentinel.master_for(
        settings.redis_sentinel_service,
        redis_class=SyncSentinelRedis,
        **(url_options | options),
    )
    client.sentinels = sentinel
    return client


def async_client(settings: Settings, **options: Any) -> redis.asyncio.Redis:
    """An asyncio redis-py client of the primary; `options` as for `redis.asyncio.Redis`."""
    if not settings.redis_sentinels:
        return redis.asyncio.Redis.from_url(settings.redis_url, **options)
    sentinel = redis.asyncio.sentinel.Sentinel(
        settings.redis_sentinels, sentinel_kwargs=_sentinel_options(settings)
    )
    url_options = _primary_options(_url_options(settings, asyncio=True))
    client: AsyncSentinelRedis = sentinel.master_for(
        settings.redis_sentinel_service,
        redis_class=AsyncSentinelRedis,
        **(url_options | options),
    )
    client.sentinels = sentinel
    return client


def lean_client(
    settings: Settings,
    *,
    connect_timeout: float = 2.0,
    reply_timeout: float = 5.0,
    wait_for_replicas: bool = True,
) -> LeanRedis:
    """The lean client (`api.store.lean_redis`), to the same Redis as the others; its
    scripts wait for OUTDIAL_REDIS_WAIT_REPLICAS replicas when `wait_for_replicas`."""
    options = _url_options(settings, asyncio=True)
    tls = _tls_context(options) if _wants_tls(options) else None
    locator: FixedLocator | SentinelLocator
    if settings.redis_sentinels:
        locator = SentinelLocator(settings, tls)
    else:
        locator = FixedLocator(
            Endpoint(
                host=options.get("host", "localhost"),
                port=int(options.get("port", 6379)),
                path=options.get("path"),
                tls=tls,
            )
        )
    return LeanRedis(
        locator,
        handshake=_handshake(options),
        connect_timeout=connect_timeout,
        reply_timeout=reply_timeout,
        wait_replicas=settings.redis_wait_replicas if wait_for_replicas else 0,
        wait_timeout_ms=REPLICA_WAIT_TIMEOUT_MS,
    )


class FixedLocator:
    """The one address of REDIS_URL (a managed Redis's DNS name is resolved per connection,
    so one that moves its name to a new primary is followed too)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint

    async def primary(self) -> Endpoint:
        return self._endpoint

    async def aclose(self) -> None:
        return None


class SentinelLocator:
    """The primary the sentinels name now (redis-py's `discover_master`: the first sentinel
    that names a primary it sees up, asked in turn); `MasterNotFoundError`, a redis-py
    ConnectionError, when none does."""

    def __init__(self, settings: Settings, tls: ssl.SSLContext | None) -> None:
        self._service = settings.redis_sentinel_service
        self._tls = tls
        self._sentinel = redis.asyncio.sentinel.Sentinel(
            settings.redis_sentinels, sentinel_kwargs=_sentinel_options(settings)
        )

    async def primary(self) -> Endpoint:
        host, port = await self._sentinel.discover_master(self._service)
        return Endpoint(host=str(host), port=int(port), tls=self._tls)

    async def aclose(self) -> None:
        await self._sentinel.aclose()


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    """How the clients talk to the sentinels themselves."""
    options: dict[str, Any] = {
        "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
        "protocol": _PROTOCOL,
    }
    if settings.redis_sentinel_password:
        options["password"] = settings.redis_sentinel_password
    if settings.redis_sentinel_tls:
        url_options = _url_options(settings, asyncio=False)
        options |= {"ssl": True} | _tls_options(url_options)
    return options


def _url_options(settings: Settings, *, asyncio: bool) -> dict[str, Any]:
    """REDIS_URL as redis-py's keyword arguments (its blocking or its asyncio classes)."""
    parse = redis.asyncio.connection.parse_url if asyncio else redis.connection.parse_url
    options: dict[str, Any] = dict(parse(settings.redis_url))
    return options


def _primary_options(url_options: dict[str, Any]) -> dict[str, Any]:
    """REDIS_URL's options for a sentinel-managed pool: its address left out (a sentinel
    names it), TLS asked for by flag (the pool picks its own TLS connection class)."""
    tls = _wants_tls(url_options)
    kept = {
        name: value
        for name, value in url_options.items()
        if name not in ("host", "port", "path", "connection_class")
    }
    return kept | ({"ssl": True} if tls else {})


def _wants_tls(url_options: dict[str, Any]) -> bool:
    connection_class = url_options.get("connection_class")
    return connection_class is not None and issubclass(
        connection_class, (redis.connection.SSLConnection, redis.asyncio.connection.SSLConnection)
    )


def _tls_options(url_options: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in url_options.items() if name.startswith("ssl_")}


def _tls_context(url_options: dict[str, Any]) -> ssl.SSLContext:
    """The lean client's TLS, from the same `ssl_*` URL options redis-py reads: a CA file
    (`ssl_ca_certs`), a client certificate (`ssl_certfile`, `ssl_keyfile`), and
    `ssl_cert_reqs=none` to skip verification (a self-signed test server only)."""
    context = ssl.create_default_context(cafile=url_options.get("ssl_ca_certs"))
    if url_options.get("ssl_certfile"):
        context.load_cert_chain(url_options["ssl_certfile"], url_options.get("ssl_keyfile"))
    if url_options.get("ssl_check_hostname") is False:
        context.check_hostname = False
    if url_options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _handshake(url_options: dict[str, Any]) -> list[Command]:
    """AUTH and SELECT from REDIS_URL, sent first on each of the lean client's connections."""
    commands: list[Command] = []
    if url_options.get("password"):
        username = url_options.get("username")
        password = url_options["password"]
        commands.append(["AUTH", username, password] if username else ["AUTH", password])
    if int(url_options.get("db") or 0):
        commands.append(["SELECT", int(url_options["db"])])
    return commands
