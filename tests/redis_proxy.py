"""A TCP proxy in front of a Redis server that loses the replies to chosen commands.

Redis runs the command, but its client never gets the reply: the proxy closes the client's
connection instead (what a failover, a proxy restart or a cut link looks like to the
client, which cannot tell whether its command ran). Every other command and reply passes
through unchanged. A rule matches a command name, optionally its first argument (e.g. a
script's SHA for EVALSHA) and bytes that one of its arguments must contain (e.g. a call
id), and loses the next `times` replies it matches.

The proxy knows the reply is lost for good only once Redis has answered: it sends an
`ECHO <marker>` right behind the command on the same connection and swallows everything up
to the marker's reply, so a rule's `lost` list only holds commands that Redis has run.
It reads RESP requests (what redis-py and Dramatiq send); a client must not pipeline a
matched command behind others whose replies it has not read yet (redis-py's scripts and
single commands never do).

It runs on its own event loop in a daemon thread, so blocking code (a worker's shutdown,
`WorkerProcess.stop()`) never stalls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import uuid
from dataclasses import dataclass, field

from tests.loop_thread import LoopThreadServer
from tests.support import free_port


def script_sha(script: str) -> str:
    """The SHA1 Redis knows a Lua script by (what EVALSHA sends)."""
    return hashlib.sha1(script.encode()).hexdigest()


def pack(*args: bytes | str) -> bytes:
    out = bytearray(b"*%d\r\n" % len(args))
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return bytes(out)


def parse_command(buf: bytes | bytearray, pos: int) -> tuple[list[bytes], int] | None:
    """One RESP array of bulk strings at `pos`: (arguments, end), or None if incomplete.
    ValueError when the bytes are not a RESP array (an inline command)."""
    if pos >= len(buf):
        return None
    if buf[pos : pos + 1] != b"*":
        raise ValueError("not a RESP array")
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    count = int(buf[pos + 1 : line_end])
    pos = line_end + 2
    args: list[bytes] = []
    for _ in range(count):
        if pos >= len(buf):
            return None
        if buf[pos : pos + 1] != b"$":
            raise ValueError("not a bulk string")
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        start = line_end + 2
        end = start + int(buf[pos + 1 : line_end])
        if len(buf) < end + 2:
            return None
        args.append(bytes(buf[start:end]))
        pos = end + 2
    return args, pos


@dataclass(eq=False)
class LoseReply:
    """Loses the replies to the next `times` commands it matches."""

    command: bytes
    first_arg: bytes | None = None
    contains: bytes | None = None
    times: int = 1
    # the commands (arguments) whose replies were lost, once Redis had run them
    lost: list[list[bytes]] = field(default_factory=list)
    _taken: int = 0

    def matches(self, args: list[bytes]) -> bool:
        if self._taken >= self.times or not args or args[0].upper() != self.command:
            return False
        if self.first_arg is not None and (len(args) < 2 or args[1] != self.first_arg):
            return False
        return self.contains is None or any(self.contains in arg for arg in args[1:])


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream one."""

    marker: bytes | None = None
    reply_lost: asyncio.Event = field(default_factory=asyncio.Event)


class RedisProxy(LoopThreadServer):
    _thread_name = "redis-proxy"

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._rules: list[LoseReply] = []
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- test side -------------------------------------------------------------------------

    def lose_reply(
        self,
        command: str,
        *,
        first_arg: str | None = None,
        contains: str | None = None,
        times: int = 1,
    ) -> LoseReply:
        """Lose the replies to the next `times` commands named `command` (whose first
        argument is `first_arg`, and one of whose arguments contains `contains`)."""
        rule = LoseReply(
            command.upper().encode(),
            first_arg.encode() if first_arg is not None else None,
            contains.encode() if contains is not None else None,
            times,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def lost(self, rule: LoseReply) -> list[list[bytes]]:
        with self._lock:
            return list(rule.lost)

    # -- proxy side ------------------------------------------------------------------------

    async def _astart(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _astop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _take(self, args: list[bytes]) -> LoseReply | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(args):
                    rule._taken += 1
                    return rule
        return None

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            redis_in, redis_out = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_out.close()
            return
        link = _Link()
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
        self, client_in: asyncio.StreamReader, redis_out: asyncio.StreamWriter, link: _Link
    ) -> None:
        buf = bytearray()
        while data := await client_in.read(65536):
            buf += data
            out = bytearray()
            pos = 0
            while True:
                try:
                    parsed = parse_command(buf, pos)
                except ValueError:  # not RESP: passed on as it is
                    out += buf[pos:]
                    pos = len(buf)
                    break
                if parsed is None:
                    break
                args, end = parsed
                rule = self._take(args)
                out += buf[pos:end]
                pos = end
                if rule is not None:
                    # Redis runs it; its reply (and the marker's) goes nowhere.
                    link.marker = uuid.uuid4().hex.encode()
                    redis_out.write(bytes(out) + pack(b"ECHO", link.marker))
                    await redis_out.drain()
                    await link.reply_lost.wait()
                    with self._lock:
                        rule.lost.append(args)
                    return  # both connections close: the client sees a dropped link
            del buf[:pos]
            if out:
                redis_out.write(bytes(out))
                await redis_out.drain()

    async def _to_client(
        self, redis_in: asyncio.StreamReader, client_out: asyncio.StreamWriter, link: _Link
    ) -> None:
        swallowed = bytearray()
        while data := await redis_in.read(65536):
            if link.marker is None:
                client_out.write(data)
                await client_out.drain()
                continue
            swallowed += data
            if link.marker in swallowed:
                link.reply_lost.set()
                await asyncio.Event().wait()  # the other pump closes the link
