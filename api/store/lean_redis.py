"""A lean Redis client for the hot paths: one connection, commands pipelined.

Why: redis-py spends tens of microseconds of Python on every command (pool checkout, retry
wrapper, packing and parsing layers; ~150 µs of CPU per script call against ~25 here), and
`POST /v1/api/call` and the dial worker were bound by it. Every script call of the store
(`Store.run`) goes through it. This client writes each batch of commands on one shared
connection and hands replies back in order, the way Redis answers them, parsed by hiredis.
It does what those paths need and no more: pipelined batches, EVALSHA that loads a missing
script, reconnecting after a lost connection; it never sends a command twice (a step that
failed is retried by its own caller, from the state Redis holds). The batches sent in one
turn of the event loop (concurrent requests reaching their Redis step together) leave in one
write at the turn's end: a loopback write costs tens of microseconds of kernel time, more
than packing a batch. Failures raise redis-py's exception types, so callers handle one
family. A client with replicas to wait for sends a WAIT after each script, which holds its
connection until answered: such a client is kept for the writes that need it
(`Store.replicated`).
Where it connects is not its business: every new connection asks its `Locator` (made by
`api.store.connect`: a fixed address, or the primary the sentinels name right now), and a
READONLY reply (the primary it reached was demoted by a failover) drops the connection,
so the next batch asks again.
A transport belongs to one event loop: the client serves the loop it first ran on (its
owner holds one per loop, see api/resources.py) and refuses any other.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha1
from typing import Any, Protocol, cast

import hiredis
from redis import exceptions as redis_errors
from redis.exceptions import ResponseError

Command = Sequence[str | bytes | int]


@dataclass(frozen=True)
class Endpoint:
    """Where one connection goes: a TCP address (with TLS when `tls` is set) or a socket."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    tls: ssl.SSLContext | None = None


class Locator(Protocol):
    """Names the Redis to connect to; asked again for every new connection."""

    async def primary(self) -> Endpoint: ...

    async def aclose(self) -> None: ...


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings, the one request form Redis takes."""
    # Parts joined once, types tested exactly: an accept's script call (about 45 arguments,
    # a few kB) packs in less than half the time of a growing bytearray and isinstance.
    parts: list[bytes] = []
    append = parts.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            if type(arg) is str:
                data = arg.encode()
            elif type(arg) is bytes:
                data = arg
            elif type(arg) is int or type(arg) is float:
                data = repr(arg).encode()
            else:
                # As redis-py: None or a bool is a caller's mistake, never a word sent.
                raise redis_errors.DataError(f"invalid argument for redis: {arg!r}")
            append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def hash_reply(flat: list[str]) -> dict[str, str]:
    """An HGETALL reply (alternating fields and values) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


@dataclass(eq=False)
class _Batch:
    future: asyncio.Future[list[Any]]
    size: int
    deadline: float
    replies: list[Any] = field(default_factory=list)


class _RespProtocol(asyncio.Protocol):
    """Matches replies to batches first in, first out; fails them all if the link drops.

    One watchdog timer per connection, not one per command: when the oldest batch passes
    its deadline the connection is closed, since a late reply would be matched to the
    wrong batch. Batches are written in the order they were sent (one write per loop
    turn), which is the order their replies are matched in.
    """

    def __init__(self, reply_timeout: float) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self._waiting: deque[_Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._reply_timeout = reply_timeout
        self._watchdog: asyncio.TimerHandle | None = None
        # Sent this loop turn, written by `_flush` at its end.
        self._unwritten: list[bytes] = []
        self.alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.alive = True

    def keep_alive(self) -> None:
        # A peer that vanished without closing is then noticed even on an idle connection.
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def send(self, data: bytes, size: int) -> asyncio.Future[list[Any]]:
        if not self.alive or self._transport is None:
            raise redis_errors.ConnectionError("connection to redis is closed")
        batch = _Batch(self._loop.create_future(), size, self._loop.time() + self._reply_timeout)
        self._waiting.append(batch)
        if not self._unwritten:
            self._loop.call_soon(self._flush)
        self._unwritten.append(data)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(batch.deadline, self._check_deadline)
        return batch.future

    def _flush(self) -> None:
        data, self._unwritten = b"".join(self._unwritten), []
        # A link lost since has failed the batches these bytes were for (`_fail_all`).
        if self.alive and self._transport is not None:
            self._transport.write(data)

    def _check_deadline(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        deadline = self._waiting[0].deadline
        if self._loop.time() >= deadline:
            self.close(
                redis_errors.TimeoutError(f"no reply from redis within {self._reply_timeout} s")
            )
        else:
            self._watchdog = self._loop.call_at(deadline, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                batch = self._waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.size:
                    self._waiting.popleft()
                    # A cancelled caller's replies are read and dropped: the order holds.
                    if not batch.future.done():
                        batch.future.set_result(batch.replies)
        except (hiredis.ProtocolError, IndexError) as exc:
            self.close(redis_errors.ConnectionError(f"redis protocol error: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(redis_errors.ConnectionError(f"connection to redis lost: {exc or 'closed'}"))

    def close(self, error: Exception | None = None) -> None:
        self._fail_all(error or redis_errors.ConnectionError("connection to redis closed"))
        if self._transport is not None:
            self._transport.abort()

    def _fail_all(self, error: Exception) -> None:
        self.alive = False
        self._unwritten.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(error)


class NotReplicated(redis_errors.RedisError):
    """A write the primary applied but fewer replicas than asked confirmed in time: a
    failover now could lose it, so its caller fails as if Redis had (a retry finds the
    write if it stayed: an accept's Idempotency-Key, a dial step's mark)."""

    def __init__(self, acked: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(f"{acked} of {wanted} replicas confirmed the write within {timeout_ms} ms")


def replicated(acked: Any, wanted: int, timeout_ms: int) -> None:
    """Raise `NotReplicated` unless a WAIT reply counts `wanted` replicas."""
    if int(acked) < wanted:
        raise NotReplicated(int(acked), wanted, timeout_ms)


def _demoted(error: ResponseError) -> bool:
    """A write refused by a replica, or a WAIT sent to one (a script that only read ran)."""
    text = str(error)
    return text.startswith("READONLY") or "cannot be used with replica" in text


def always(reply: Any) -> bool:
    """Every reply counts as a write (`LeanRedis.evalsha`'s `wrote`)."""
    return True


class LeanScript:
    """A Lua script called by its SHA1, loaded on first use or after a Redis restart."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = sha1(source.encode()).hexdigest()


class LeanRedis:
    """Pipelined commands over one connection, on one event loop (see the module docstring)."""

    def __init__(
        self,
        locator: Locator,
        *,
        handshake: Sequence[Command] = (),
        connect_timeout: float = 2.0,
        reply_timeout: float = 5.0,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self._locator = locator
        # Scripts are writes: each one's reply waits until this many replicas have it (WAIT,
        # in the same batch on the same connection, so it covers that very write).
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._wait: Command | None = (
            ["WAIT", wait_replicas, wait_timeout_ms] if wait_replicas else None
        )
        # Sent first on every new connection (AUTH, SELECT), from the URL.
        self._handshake = list(handshake)
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: _RespProtocol | None = None
        self._connecting: asyncio.Future[_RespProtocol] | None = None

    async def execute(self, *commands: Command) -> list[Any]:
        """Send the commands as one batch; their replies in order. Error replies raise."""
        replies = await self._roundtrip(pack(commands), len(commands))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def evalsha(
        self,
        script: LeanScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        wrote: Callable[[Any], bool] = always,
    ) -> Any:
        """The script's reply. A client with replicas to wait for (`wait_replicas`) waits
        for them too: `NotReplicated` when too few confirm in time and `wrote(reply)` (a
        reply that says the script only read needs no replica)."""
        (reply,) = await self.evalsha_many([(script, keys, args)], wrote=wrote)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def evalsha_many(
        self,
        calls: Sequence[tuple[LeanScript, Sequence[str], Sequence[Any]]],
        *,
        wrote: Callable[[Any], bool] = always,
    ) -> list[Any]:
        """Each script's reply in order, from one batch (each script atomic on its own; an
        error reply is returned as its `ResponseError`, not raised). With replicas to wait
        for, one WAIT behind the scripts covers them all (`NotReplicated` as `evalsha`)."""
        if not calls:
            return []  # a batch of no command would wait for no reply forever
        commands: list[Command] = [
            ["EVALSHA", script.sha, len(keys), *keys, *args] for script, keys, args in calls
        ]
        replies, acked = await self._run_scripts(commands)
        missing = [
            index
            for index, reply in enumerate(replies)
            if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")
        ]
        if missing:
            # Those did not run (Redis restarted or flushed its scripts): each script is
            # loaded once, ahead of them in the same batch, and they are sent again.
            sources = {calls[index][0].sha: calls[index][0].source for index in missing}
            loads: list[Command] = [["SCRIPT", "LOAD", source] for source in sources.values()]
            retried, acked_again = await self._run_scripts(
                loads + [commands[index] for index in missing]
            )
            for index, reply in zip(missing, retried[len(loads) :], strict=True):
                replies[index] = reply
            if acked is not None:
                acked = min(int(acked), int(acked_again))
        if self._wait is not None and any(
            wrote(reply) for reply in replies if not isinstance(reply, ResponseError)
        ):
            replicated(acked, self._wait_replicas, self._wait_timeout_ms)
        return replies

    async def _run_scripts(self, commands: list[Command]) -> tuple[list[Any], Any]:
        """The scripts' replies, and the WAIT's behind them (None without one)."""
        batch = commands if self._wait is None else [*commands, self._wait]
        replies = await self._roundtrip(pack(batch), len(batch))
        if self._wait is None:
            return replies, None
        return replies[:-1], replies[-1]

    async def aclose(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()
        await self._locator.aclose()

    async def _roundtrip(self, data: bytes, size: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                raise RuntimeError("this LeanRedis belongs to another event loop")
            self._loop = loop
        link = self._link
        if link is None or not link.alive:
            link = await self._connect(loop)
        replies = await link.send(data, size)
        for reply in replies:
            if isinstance(reply, ResponseError) and _demoted(reply):
                # A failover demoted the primary this link reached: the next batch connects
                # to whichever the locator names now (as redis-py's sentinel pool does).
                link.close()
                raise redis_errors.ConnectionError(f"redis is no longer the primary: {reply}")
        return replies

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _RespProtocol:
        # Concurrent callers share one connection attempt.
        pending = self._connecting
        if pending is None:
            pending = self._connecting = loop.create_task(self._open())
            pending.add_done_callback(self._connected)
        link = await asyncio.shield(pending)
        self._link = link
        return link

    def _connected(self, attempt: asyncio.Future[_RespProtocol]) -> None:
        self._connecting = None

    async def _open(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()

        def protocol() -> _RespProtocol:
            return _RespProtocol(self.reply_timeout)

        # Raises redis-py's ConnectionError itself when no sentinel names a primary.
        endpoint = await self._locator.primary()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if endpoint.path:
                    _, link = await loop.create_unix_connection(protocol, endpoint.path)
                else:
                    _, link = await loop.create_connection(
                        protocol, endpoint.host, endpoint.port, ssl=endpoint.tls
                    )
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(f"cannot connect to redis: {exc!r}") from exc
        link.keep_alive()
        if self._handshake:
            replies = await link.send(pack(self._handshake), len(self._handshake))
            errors = [reply for reply in replies if isinstance(reply, ResponseError)]
            if errors:
                link.close()
                raise redis_errors.ConnectionError(f"redis refused the handshake: {errors[0]}")
        return link
