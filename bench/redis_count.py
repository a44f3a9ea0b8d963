"""A counting TCP proxy in front of Redis: every command and round trip of its clients.

Counted at the wire, so it is exact whatever the client (redis-py, the lean accept client,
Dramatiq) and whatever else shares the Redis server: a command is one RESP request (an
EVALSHA is one command, whatever its script runs), a round trip is a client's batch of
requests sent while none of its replies was outstanding (a pipeline or MULTI..EXEC is one
round trip). The proxy parses the replies too, to know when a batch's replies are in and
to keep each batch's reply bytes (to tell what a fetch returned). A subscribed connection
(SUBSCRIBE) only counts its commands: its pushes are not replies.

Each connection's client process is looked up once (psutil, by the client's port), so a
batch is known as the API's or the worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from tests.loop_thread import LoopThreadServer
from tests.redis_proxy import parse_command
from tests.support import free_port


def reply_end(buf: bytes | bytearray, pos: int) -> int | None:
    """The end of the RESP2/RESP3 reply at `pos`, or None if it is not all there yet."""
    if pos >= len(buf):
        return None
    kind = buf[pos : pos + 1]
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    if kind in (b"$", b"!", b"="):
        size = int(buf[pos + 1 : line_end])
        if size < 0:
            return line_end + 2
        end = line_end + 2 + size + 2
        return end if len(buf) >= end else None
    if kind in (b"*", b"~", b">", b"%", b"|"):
        count = int(buf[pos + 1 : line_end])
        if count < 0:
            return line_end + 2
        if kind in (b"%", b"|"):
            count *= 2
        pos = line_end + 2
        for _ in range(count):
            end = reply_end(buf, pos)
            if end is None:
                return None
            pos = end
        return pos
    return line_end + 2  # + - : _ , # ( and anything one line long


@dataclass
class Batch:
    """One round trip: the commands a client sent together and the bytes of their replies."""

    connection: int
    process: str
    started: float
    commands: list[list[bytes]]
    replies: bytearray = field(default_factory=bytearray)
    label: str = ""  # the phase the driver was in when the batch started


@dataclass(eq=False)
class _Connection:
    number: int
    process: str
    subscribed: bool = False
    outstanding: int = 0
    batch: Batch | None = None


class CountingProxy(LoopThreadServer):
    """Forwards every connection to Redis and records each round trip as a `Batch`.
    `process_of(pid)` names the process a connection belongs to ('' when not known)."""

    _thread_name = "counting-proxy"

    def __init__(self, process_of: Callable[[int], str], upstream_port: int = 6379) -> None:
        super().__init__()
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.label = ""
        self._process_of = process_of
        self.batches: list[Batch] = []
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = 0

    def taken(self) -> list[Batch]:
        with self._lock:
            return list(self.batches)

    async def _astart(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _astop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _client_process(self, port: int) -> str:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid is not None:
                return self._process_of(conn.pid)
        return ""

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            redis_in, redis_out = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_out.close()
            return
        self._connections += 1
        number = self._connections
        peer_port = client_out.get_extra_info("peername")[1]
        process = await asyncio.to_thread(self._client_process, peer_port)
        link = _Connection(number, process)
        pumps = [
            asyncio.create_task(self._to_redis(client_in, redis_out, link)),
            asyncio.create_task(self._to_client(redis_in, client_out, link)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            for writer in (client_out, redis_out):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _to_redis(
        self, client_in: asyncio.StreamReader, redis_out: asyncio.StreamWriter, link: _Connection
    ) -> None:
        buf = bytearray()
        while data := await client_in.read(65536):
            buf += data
            pos = 0
            while (parsed := parse_command(buf, pos)) is not None:
                args, pos = parsed
                self._sent(link, args)
            del buf[:pos]
            redis_out.write(data)
            await redis_out.drain()

    def _sent(self, link: _Connection, args: list[bytes]) -> None:
        name = args[0].upper() if args else b""
        if name in (b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"):
            link.subscribed = True
        with self._lock:
            if link.batch is None or link.outstanding == 0 or link.subscribed:
                link.batch = Batch(link.number, link.process, time.time(), [], label=self.label)
                self.batches.append(link.batch)
            link.batch.commands.append(args)
            link.outstanding += 1

    async def _to_client(
        self, redis_in: asyncio.StreamReader, client_out: asyncio.StreamWriter, link: _Connection
    ) -> None:
        buf = bytearray()
        while data := await redis_in.read(65536):
            if not link.subscribed:
                buf += data
                pos = 0
                while link.outstanding and (end := reply_end(buf, pos)) is not None:
                    with self._lock:
                        if link.batch is not None:
                            link.batch.replies += buf[pos:end]
                        link.outstanding -= 1
                    pos = end
                del buf[:pos]
            client_out.write(data)
            await client_out.drain()
